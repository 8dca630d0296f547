use crate::harness::{Req, Server, xml_values};

#[tokio::test]
async fn bucket_crud() {
    let s = Server::start().await;
    s.send(Req::new("PUT", "/photos")).await.expect(200, None);
    s.send(Req::new("PUT", "/photos"))
        .await
        .expect(409, Some("BucketAlreadyOwnedByYou"));
    s.send(Req::new("PUT", "/Bad_Name"))
        .await
        .expect(400, Some("InvalidBucketName"));
    s.send(Req::new("HEAD", "/photos")).await.expect(200, None);
    s.send(Req::new("HEAD", "/missing")).await.expect(404, None);
    let list = s.send(Req::new("GET", "/")).await;
    list.expect(200, None);
    assert_eq!(xml_values(&list.text(), "Name"), vec!["photos"]);
    let loc = s.send(Req::new("GET", "/photos").query("location", "")).await;
    loc.expect(200, None);
    assert!(loc.text().contains("LocationConstraint"), "{}", loc.text());
    s.put("photos", "a.txt", "x").await;
    s.send(Req::new("DELETE", "/photos"))
        .await
        .expect(409, Some("BucketNotEmpty"));
    s.send(Req::new("DELETE", "/photos/a.txt"))
        .await
        .expect(204, None);
    s.send(Req::new("DELETE", "/photos")).await.expect(204, None);
    s.send(Req::new("HEAD", "/photos")).await.expect(404, None);
    s.send(Req::new("GET", "/photos/a.txt"))
        .await
        .expect(404, Some("NoSuchBucket"));
}
