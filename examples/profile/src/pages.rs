//! The example's HTML, written with `format!`: every value from a user or
//! a file goes through [`esc`] first.

use crate::state::Profile;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\n<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        title = esc(title),
    )
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}\
label{display:block;margin:1rem 0}#avatar{border-radius:50%;object-fit:cover}\
.error{color:#a00}[role=progressbar]{display:block;width:100%}";

/// The sign-in form.
pub fn sign_in() -> String {
    page(
        "Sign in",
        "<h1>Sign in</h1>\n<form method=\"post\" action=\"/login\">\
         <label>User name <input name=\"user\" required pattern=\"[a-z0-9_-]{1,32}\" \
         autocomplete=\"username\"></label><button type=\"submit\">Sign in</button></form>",
    )
}

/// What the profile page needs besides the profile.
pub struct ProfileView<'a> {
    /// The signed-in user.
    pub user: &'a str,
    /// The stored profile.
    pub profile: &'a Profile,
    /// The grant JWT for the avatar input.
    pub avatar_grant: &'a str,
    /// The grant JWT for the documents input.
    pub documents_grant: &'a str,
    /// The largest avatar in bytes.
    pub avatar_max: u64,
    /// The largest document in bytes.
    pub document_max: u64,
}

/// The profile page: the avatar, the documents, and the form.
pub fn profile(v: &ProfileView<'_>) -> String {
    let p = v.profile;
    let name = if p.display_name.is_empty() {
        v.user
    } else {
        &p.display_name
    };
    let avatar = match &p.avatar {
        Some(a) => format!(
            "<a href=\"/media/{}\"><img id=\"avatar\" src=\"/media/{}\" alt=\"avatar of {}\"></a>",
            esc(&a.file.key),
            esc(a.thumb.as_deref().unwrap_or(&a.file.key)),
            esc(name)
        ),
        None => "<p id=\"no-avatar\">No avatar yet.</p>".to_owned(),
    };
    let docs: String = p
        .documents
        .iter()
        .map(|d| {
            format!(
                "<li><a href=\"/media/{}?download=1\" download=\"{}\">{}</a> <small>{} bytes, {}</small></li>\n",
                esc(&d.key),
                esc(&d.filename),
                esc(&d.filename),
                d.size,
                esc(&d.content_type)
            )
        })
        .collect();
    let docs = if docs.is_empty() {
        "<p id=\"no-documents\">No documents yet.</p>".to_owned()
    } else {
        format!("<ul id=\"documents\">\n{docs}</ul>")
    };
    let body = format!(
        "<h1 id=\"display-name\">{name}</h1>\n<p>Signed in as <b>{user}</b>.</p>\n{avatar}\n\
         <h2>Documents</h2>\n{docs}\n<h2>Edit</h2>\n\
         <form method=\"post\" action=\"/profile\" id=\"profile\">\n\
         <label>Display name <input name=\"display_name\" maxlength=\"80\" value=\"{value}\"></label>\n\
         <label>Avatar (PNG, JPEG, WebP or GIF, up to {avatar_mib} MiB) \
         <input type=\"file\" name=\"avatar\" accept=\"image/png,image/jpeg,image/webp,image/gif\" \
         data-chute=\"/api/uploads\" data-grant=\"{ag}\" data-max-size=\"{amax}\"></label>\n\
         <label>Documents (PDF or text, up to {doc_mib} MiB each) \
         <input type=\"file\" name=\"documents\" multiple accept=\".pdf,.txt,application/pdf,text/plain\" \
         data-chute=\"/api/uploads\" data-grant=\"{dg}\" data-max-size=\"{dmax}\"></label>\n\
         <div data-chute-progress></div>\n<button type=\"submit\">Save</button>\n</form>\n\
         <script type=\"module\" src=\"/chute.js\"></script>",
        name = esc(name),
        user = esc(v.user),
        value = esc(&p.display_name),
        avatar_mib = v.avatar_max >> 20,
        doc_mib = v.document_max >> 20,
        ag = esc(v.avatar_grant),
        dg = esc(v.documents_grant),
        amax = v.avatar_max,
        dmax = v.document_max,
    );
    page(&format!("{name}'s profile"), &body)
}

/// A refusal: the status, a stable code and the message.
pub fn error(status: u16, code: &str, message: &str) -> String {
    page(
        "Not saved",
        &format!(
            "<h1>Not saved ({status})</h1>\n<p id=\"error\" class=\"error\" data-code=\"{}\">{}</p>\n\
             <p><a href=\"/\">Back to the profile</a></p>",
            esc(code),
            esc(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
