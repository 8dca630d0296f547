//! A bucket lifecycle rule that expires Chute's temporary prefix in the
//! store itself, a second line behind the reaper: objects under the
//! prefix are deleted after some days and incomplete multipart uploads
//! aborted. S3 replaces a bucket's whole lifecycle configuration on every
//! write, so the rule is only installed on a bucket that has none.

use super::S3Store;
use crate::{StoreError, StoreResult};

/// What [`S3Store::install_expiry_rule`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryRuleOutcome {
    /// The bucket had no lifecycle configuration; the rule is installed.
    Installed,
    /// The bucket already has a lifecycle configuration; left untouched
    /// (writing ours would delete its rules).
    Kept,
}

impl S3Store {
    /// Installs a rule deleting objects under `prefix` `expire_days` after
    /// they were written and aborting multipart uploads under it
    /// `abort_days` after they began, unless the bucket has a lifecycle
    /// configuration already.
    pub async fn install_expiry_rule(
        &self,
        prefix: &str,
        expire_days: u32,
        abort_days: u32,
    ) -> StoreResult<ExpiryRuleOutcome> {
        if expire_days == 0 || abort_days == 0 || prefix.is_empty() {
            return Err(StoreError::Config(
                "expiry rules need a prefix and at least one day".into(),
            ));
        }
        let rule = rule_xml(prefix, expire_days, abort_days);
        if self.put_subresource_if_absent("lifecycle", rule).await? {
            Ok(ExpiryRuleOutcome::Installed)
        } else {
            Ok(ExpiryRuleOutcome::Kept)
        }
    }
}

fn rule_xml(prefix: &str, expire_days: u32, abort_days: u32) -> String {
    let prefix = prefix
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
         <ID>chute-expire-tmp</ID><Filter><Prefix>{prefix}</Prefix></Filter><Status>Enabled</Status>\
         <Expiration><Days>{expire_days}</Days></Expiration>\
         <AbortIncompleteMultipartUpload><DaysAfterInitiation>{abort_days}</DaysAfterInitiation>\
         </AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_prefix_and_days() {
        let xml = rule_xml("tmp/", 3, 2);
        assert!(xml.contains("<Prefix>tmp/</Prefix>"));
        assert!(xml.contains("<Expiration><Days>3</Days></Expiration>"));
        assert!(xml.contains("<DaysAfterInitiation>2</DaysAfterInitiation>"));
    }
}
