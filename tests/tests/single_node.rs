//! The HTTP contract (DESIGN §2, §6, §8) against one real member.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_tests::{base64, eventually, json, Cluster, Resp};
use reqwest::Method;
use serde_json::Value;

/// The only member: index 0, id 1.
const M: usize = 0;
const ID: u64 = 1;

fn one() -> Cluster {
    Cluster::start(1)
}

/// Current revision as the header of a cheap JSON call reports it.
fn revision(c: &Cluster) -> u64 {
    let v = c.get(M, "/health").ok_json(200, ID);
    v["header"]["revision"].as_u64().unwrap()
}

fn value_of(c: &Cluster, path: &str) -> Option<String> {
    let r = c.get(M, &format!("/v1/nodes{path}"));
    match r.status {
        404 => {
            r.error(404, "not_found");
            None
        }
        _ => {
            let v = r.ok_json(200, ID);
            Some(v["node"]["value"].as_str().unwrap().to_owned())
        }
    }
}

fn children_names(v: &Value) -> Vec<String> {
    v["children"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn bad_paths_are_400_invalid_path_naming_the_rule() {
    let c = one();
    let long = format!("/v1/nodes/{}", "x".repeat(4100));
    let cases: Vec<(&str, String, &str)> = vec![
        ("GET", "/v1/nodes//a".into(), "empty segment"),
        ("GET", "/v1/nodes/a//b".into(), "empty segment"),
        ("GET", "/v1/nodes/a/".into(), "end with '/'"),
        ("GET", "/v1/nodes/a/b/".into(), "end with '/'"),
        ("GET", "/v1/nodes/a/%2E%2E/b".into(), "'.' or '..'"),
        ("GET", "/v1/nodes/a/%2e".into(), "'.' or '..'"),
        ("GET", "/v1/nodes/a/../b".into(), "'.' or '..'"),
        ("GET", "/v1/nodes/./a".into(), "'.' or '..'"),
        ("GET", "/v1/nodes/a%01b".into(), "control"),
        ("GET", "/v1/nodes/a%0Ab".into(), "control"),
        ("GET", "/v1/nodes/a%7Fb".into(), "control"),
        ("PUT", "/v1/nodes/a/".into(), "end with '/'"),
        ("PUT", "/v1/nodes/a/%2E%2E/b".into(), "'.' or '..'"),
        ("PUT", "/v1/nodes/w%01".into(), "control"),
        ("POST", "/v1/nodes/a//b".into(), "empty segment"),
        ("DELETE", "/v1/nodes/a/..".into(), "'.' or '..'"),
        ("GET", long, "longer than"),
    ];
    for (method, target, rule) in &cases {
        let r = c.raw(M, method, target, b"v");
        let e = r.error(400, "invalid_path");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(rule), "{method} {target}: message {msg:?} does not name the rule {rule:?}");
    }
    // The over-long path names its limit.
    let r = c.raw(M, "GET", &format!("/v1/nodes/{}", "y".repeat(5000)), b"");
    assert_eq!(r.error(400, "invalid_path")["limit"], 4096);
    // Nothing was created by the refused writes.
    assert_eq!(c.get(M, "/v1/nodes?children").ok_json(200, ID)["children"], json!([]));
    // The same rules hold inside a transaction.
    let r = c.post_json(M, "/v1/txn", &json!({"success": [{"op": "set", "path": "/a/", "value": "x"}]}));
    r.error(400, "invalid_path");
    let r = c.post_json(
        M,
        "/v1/txn",
        &json!({"compare": [{"path": "a", "target": "exists", "op": "==", "value": true}]}),
    );
    r.error(400, "invalid_path");
    // Dots inside a name are fine.
    c.put(M, "/v1/nodes/a..b", "ok").ok_json(201, ID);
    c.put(M, "/v1/nodes/.hidden", "ok").ok_json(201, ID);
    // Non-ASCII and percent-encoded names round-trip.
    let v = c.put(M, "/v1/nodes/service%20x/%C3%A9lection?parents", "ok").ok_json(201, ID);
    assert_eq!(v["node"]["path"], "/service x/élection");
    let v = c.get(M, "/v1/nodes/service%20x?children").ok_json(200, ID);
    assert_eq!(v["children"][0]["name"], "élection");
    assert_eq!(c.get(M, "/v1/nodes/service x/élection").ok_json(200, ID)["node"]["value"], "ok");
}

/// A path that is not UTF-8 once percent-decoded is a bad path like any other: 400 with a
/// JSON `invalid_path` error (not the framework's plain-text rejection).
#[test]
fn non_utf8_path_is_a_json_invalid_path_error() {
    let c = one();
    for method in ["GET", "PUT", "DELETE"] {
        let r = c.raw(M, method, "/v1/nodes/a%FFb", b"v");
        r.error(400, "invalid_path");
    }
}

#[test]
fn create_set_compare_and_set_delete() {
    let c = one();
    let r0 = revision(&c);
    c.get(M, "/v1/nodes/k").error(404, "not_found");
    c.delete(M, "/v1/nodes/k").error(404, "not_found");

    // PUT creates: 201 with the node, no prev.
    let v = c.put(M, "/v1/nodes/k", "v0").ok_json(201, ID);
    let rev1 = v["header"]["revision"].as_u64().unwrap();
    assert_eq!(rev1, r0 + 1, "one revision per write: {v}");
    assert_eq!(v["created"], true);
    assert_eq!(v["prev"], Value::Null);
    assert_eq!(v["node"]["path"], "/k");
    assert_eq!(v["node"]["value"], "v0");
    let stat = &v["node"]["stat"];
    assert_eq!(stat["create_revision"], rev1);
    assert_eq!(stat["mod_revision"], rev1);
    assert_eq!(stat["version"], 0);
    assert_eq!(stat["cversion"], 0);
    assert_eq!(stat["num_children"], 0);
    assert_eq!(stat["data_length"], 2);
    assert_eq!(stat["lease"], Value::Null);
    assert!(stat["ctime"].as_u64().unwrap() > 1_600_000_000_000, "ctime is ms since the epoch: {stat}");
    assert_eq!(stat["ctime"], stat["mtime"]);
    assert_eq!(v["header"]["leader"], ID);

    // GET reads it back with the same stat.
    let g = c.get(M, "/v1/nodes/k").ok_json(200, ID);
    assert_eq!(g["node"], v["node"]);
    assert_eq!(g["header"]["revision"], rev1);

    // PUT again sets: 200 with prev.
    let v = c.put(M, "/v1/nodes/k", "v1").ok_json(200, ID);
    let rev2 = v["header"]["revision"].as_u64().unwrap();
    assert_eq!(rev2, rev1 + 1);
    assert_eq!(v["created"], false);
    assert_eq!(v["prev"]["value"], "v0");
    assert_eq!(v["prev"]["stat"]["version"], 0);
    assert_eq!(v["node"]["value"], "v1");
    assert_eq!(v["node"]["stat"]["version"], 1);
    assert_eq!(v["node"]["stat"]["create_revision"], rev1);
    assert_eq!(v["node"]["stat"]["mod_revision"], rev2);

    // CAS on version.
    let v = c.put(M, "/v1/nodes/k?version=1", "v2").ok_json(200, ID);
    assert_eq!(v["node"]["stat"]["version"], 2);
    let e = c.put(M, "/v1/nodes/k?version=1", "lost").error(409, "version_conflict");
    assert!(e["message"].as_str().unwrap().contains("version"), "{e}");
    assert_eq!(value_of(&c, "/k").as_deref(), Some("v2"));

    // CAS on mod_revision.
    let mod_rev = v["node"]["stat"]["mod_revision"].as_u64().unwrap();
    c.put(M, &format!("/v1/nodes/k?mod_revision={}", mod_rev - 1), "lost").error(409, "version_conflict");
    let v = c.put(M, &format!("/v1/nodes/k?mod_revision={mod_rev}"), "v3").ok_json(200, ID);
    assert_eq!(v["node"]["stat"]["version"], 3);
    c.put(M, "/v1/nodes/k?version=1&mod_revision=2", "x").error(400, "invalid_request");
    assert_eq!(value_of(&c, "/k").as_deref(), Some("v3"));

    // CAS on a missing node fails and creates nothing.
    let r = c.put(M, "/v1/nodes/nope?version=0", "x");
    assert!(r.status == 404 || r.status == 409, "CAS on a missing node: {} {}", r.status, r.text());
    assert_eq!(value_of(&c, "/nope"), None);

    // POST is create-only.
    c.post(M, "/v1/nodes/k", "again").error(409, "already_exists");
    let r = c.post(M, "/v1/nodes/fresh", "new");
    let v = r.ok_json(201, ID);
    assert_eq!(r.header("location").as_deref(), Some("/v1/nodes/fresh"));
    assert_eq!(v["node"]["path"], "/fresh");
    assert_eq!(v["node"]["value"], "new");
    assert_eq!(v["node"]["stat"]["version"], 0);

    // DELETE with a CAS.
    c.delete(M, "/v1/nodes/k?version=99").error(409, "version_conflict");
    c.delete(M, "/v1/nodes/k?mod_revision=1").error(409, "version_conflict");
    assert_eq!(value_of(&c, "/k").as_deref(), Some("v3"));
    let before = revision(&c);
    let v = c.delete(M, "/v1/nodes/k?version=3").ok_json(200, ID);
    assert_eq!(v["header"]["revision"], before + 1);
    assert_eq!(v["deleted"], 1);
    assert_eq!(v["node"]["path"], "/k");
    assert_eq!(v["node"]["value"], "v3");
    assert_eq!(value_of(&c, "/k"), None);
    c.delete(M, "/v1/nodes/k").error(404, "not_found");

    // The root cannot be deleted or created, but can be read.
    let v = c.get(M, "/v1/nodes").ok_json(200, ID);
    assert_eq!(v["node"]["path"], "/");
    assert_eq!(c.get(M, "/v1/nodes/").ok_json(200, ID)["node"]["path"], "/");
    let r = c.delete(M, "/v1/nodes/");
    assert!(r.status == 400 || r.status == 409, "deleting the root: {} {}", r.status, r.text());
    c.post(M, "/v1/nodes/", "x").error(409, "already_exists");
}

#[test]
fn parents_must_exist_unless_asked_and_deletes_are_not_recursive_unless_asked() {
    let c = one();
    let e = c.put(M, "/v1/nodes/p/q/leaf", "x").error(404, "not_found");
    assert!(e["message"].as_str().unwrap().contains("parent"), "{e}");
    c.post(M, "/v1/nodes/p/leaf", "x").error(404, "not_found");
    assert_eq!(value_of(&c, "/p"), None);

    // ?parents creates the missing ancestors, all at one revision.
    let before = revision(&c);
    let v = c.put(M, "/v1/nodes/p/q/leaf?parents", "x").ok_json(201, ID);
    assert_eq!(v["header"]["revision"], before + 1);
    let p = c.get(M, "/v1/nodes/p").ok_json(200, ID);
    assert_eq!(p["node"]["value"], "");
    assert_eq!(p["node"]["stat"]["num_children"], 1);
    assert_eq!(p["node"]["stat"]["create_revision"], before + 1);
    let q = c.get(M, "/v1/nodes/p/q").ok_json(200, ID);
    assert_eq!(q["node"]["stat"]["num_children"], 1);
    assert_eq!(q["node"]["stat"]["cversion"], 1);
    c.post(M, "/v1/nodes/p/r/s?parents=true", "y").ok_json(201, ID);
    c.put(M, "/v1/nodes/p/t", "z").ok_json(201, ID);
    let p = c.get(M, "/v1/nodes/p").ok_json(200, ID);
    assert_eq!(p["node"]["stat"]["num_children"], 3);
    assert_eq!(p["node"]["stat"]["cversion"], 3);

    // A node with children is not deleted without ?recursive.
    let e = c.delete(M, "/v1/nodes/p").error(409, "not_empty");
    assert!(e["message"].as_str().unwrap().contains("recursive"), "{e}");
    c.delete(M, "/v1/nodes/p/q").error(409, "not_empty");
    c.delete(M, "/v1/nodes/p?recursive=false").error(409, "not_empty");
    assert_eq!(value_of(&c, "/p/q/leaf").as_deref(), Some("x"));

    // ?recursive deletes the subtree at one revision.
    let before = revision(&c);
    let v = c.delete(M, "/v1/nodes/p?recursive").ok_json(200, ID);
    assert_eq!(v["header"]["revision"], before + 1);
    assert_eq!(v["deleted"], 6, "p, p/q, p/q/leaf, p/r, p/r/s, p/t: {v}");
    for path in ["/p", "/p/q", "/p/q/leaf", "/p/r", "/p/r/s", "/p/t"] {
        assert_eq!(value_of(&c, path), None, "{path} survived a recursive delete");
    }
    assert_eq!(revision(&c), before + 1);
    // Recreating works; the old subtree does not come back.
    c.put(M, "/v1/nodes/p", "again").ok_json(201, ID);
    let v = c.get(M, "/v1/nodes/p?children").ok_json(200, ID);
    assert_eq!(v["children"], json!([]));
}

#[test]
fn sequential_creates_append_an_increasing_ten_digit_counter() {
    let c = one();
    c.put(M, "/v1/nodes/q", "").ok_json(201, ID);
    let mut seen = Vec::new();
    for i in 0..5 {
        let prefix = if i == 3 { "other-" } else { "item-" };
        let r = c.post(M, &format!("/v1/nodes/q/{prefix}?sequential"), format!("v{i}"));
        let v = r.ok_json(201, ID);
        let path = v["node"]["path"].as_str().unwrap().to_owned();
        let suffix = path.strip_prefix(&format!("/q/{prefix}")).unwrap_or_else(|| panic!("{path}"));
        assert_eq!(suffix.len(), 10, "{path}");
        assert!(suffix.bytes().all(|b| b.is_ascii_digit()), "{path}");
        assert_eq!(r.header("location"), Some(format!("/v1/nodes{path}")));
        assert_eq!(value_of(&c, &path), Some(format!("v{i}")));
        seen.push(suffix.parse::<u64>().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "counter must increase: {seen:?}");
    // Deleting a sibling never makes the counter reuse a number.
    let last = format!("/v1/nodes/q/item-{:010}", seen[4]);
    c.delete(M, &last).ok_json(200, ID);
    let v = c.post(M, "/v1/nodes/q/item-?sequential", "after").ok_json(201, ID);
    let n: u64 = v["node"]["path"].as_str().unwrap()["/q/item-".len()..].parse().unwrap();
    assert!(n > seen[4], "{n} after {seen:?}");
    // Sequential with parents, and in a transaction.
    let v = c.post(M, "/v1/nodes/new/dir/n-?sequential&parents", "").ok_json(201, ID);
    assert!(v["node"]["path"].as_str().unwrap().starts_with("/new/dir/n-"), "{v}");
    let v = c
        .post_json(
            M,
            "/v1/txn",
            &json!({"success": [{"op": "create", "path": "/q/t-", "value": "", "sequential": true}]}),
        )
        .ok_json(200, ID);
    let p = v["results"][0]["node"]["path"].as_str().unwrap();
    let n: u64 = p["/q/t-".len()..].parse().unwrap();
    assert!(n > seen[4], "{p}");
    assert_eq!(p.len(), "/q/t-".len() + 10);
}

#[test]
fn size_limits_are_413_and_name_the_limit() {
    let c = one();
    let limits = c.get(M, "/v1/cluster").ok_json(200, ID)["limits"].clone();
    assert_eq!(limits["max_value_bytes"], 1024 * 1024, "{limits}");
    assert_eq!(limits["max_request_bytes"], 4 * 1024 * 1024, "{limits}");

    // Exactly 1 MiB is accepted and read back byte for byte.
    let mib = vec![b'a'; 1024 * 1024];
    c.put(M, "/v1/nodes/big", mib.clone()).ok_json(201, ID);
    let r = c.get(M, "/v1/nodes/big?raw");
    r.expect_status(200);
    assert_eq!(r.body.len(), mib.len());
    assert!(r.body == mib);

    // One byte more is refused before it is written.
    let before = revision(&c);
    let over = vec![b'b'; 1024 * 1024 + 1];
    let e = c.put(M, "/v1/nodes/big", over.clone()).error(413, "too_large");
    assert_eq!(e["limit"], 1024 * 1024, "{e}");
    let e = c.post(M, "/v1/nodes/big2", over.clone()).error(413, "too_large");
    assert_eq!(e["limit"], 1024 * 1024, "{e}");
    // Also when the value arrives base64-encoded (the body itself is below 4 MiB).
    let e = c.put(M, "/v1/nodes/big3?encoding=base64", base64(&over)).error(413, "too_large");
    assert_eq!(e["limit"], 1024 * 1024, "{e}");
    // And inside a transaction.
    let txn = json!({"success": [{"op": "set", "path": "/big4", "value": String::from_utf8(over).unwrap()}]});
    let e = c.post_json(M, "/v1/txn", &txn).error(413, "too_large");
    assert_eq!(e["limit"], 1024 * 1024, "{e}");
    assert_eq!(revision(&c), before, "a refused write must not enter the log");
    assert_eq!(c.get(M, "/v1/nodes/big?raw").body.len(), 1024 * 1024);

    // A body above the request limit.
    let huge = vec![b'c'; 4 * 1024 * 1024 + 1];
    let e = c.put(M, "/v1/nodes/huge", huge.clone()).error(413, "too_large");
    assert_eq!(e["limit"], 4 * 1024 * 1024, "{e}");
    let e = c.request(M, Method::POST, "/v1/txn", huge).error(413, "too_large");
    assert_eq!(e["limit"], 4 * 1024 * 1024, "{e}");

    // A transaction with more operations than allowed.
    let ops: Vec<Value> = (0..1025).map(|i| json!({"op": "get", "path": format!("/g{i}")})).collect();
    let e = c.post_json(M, "/v1/txn", &json!({"success": ops})).error(413, "too_large");
    assert_eq!(e["limit"], limits["max_txn_ops"], "{e}");
    assert_eq!(revision(&c), before);
    assert_eq!(value_of(&c, "/huge"), None);
    assert_eq!(value_of(&c, "/big2"), None);

    // The member still works.
    c.put(M, "/v1/nodes/after", "fine").ok_json(201, ID);
}

#[test]
fn values_raw_reads_and_base64() {
    let c = one();
    // Binary value written as base64.
    let v = c.put(M, "/v1/nodes/bin?encoding=base64", "AAEC/w==").ok_json(201, ID);
    assert_eq!(v["node"]["value"], "AAEC/w==");
    assert_eq!(v["node"]["encoding"], "base64");
    assert_eq!(v["node"]["stat"]["data_length"], 4);
    // Read as base64 explicitly, and by default (not UTF-8, so shown as base64 and marked).
    for q in ["?encoding=base64", ""] {
        let v = c.get(M, &format!("/v1/nodes/bin{q}")).ok_json(200, ID);
        assert_eq!(v["node"]["value"], "AAEC/w==", "{q}: {v}");
        assert_eq!(v["node"]["encoding"], "base64", "{q}: {v}");
    }
    // Raw read: the bare bytes.
    let r = c.get(M, "/v1/nodes/bin?raw");
    r.expect_status(200);
    assert_eq!(r.body, vec![0u8, 1, 2, 255]);
    assert_eq!(r.content_type(), "application/octet-stream");
    let rev = v["node"]["stat"]["mod_revision"].as_u64().unwrap();
    assert_eq!(r.header("x-cairn-mod-revision"), Some(rev.to_string()));
    // Raw bytes in a plain PUT body are stored as they are.
    let bytes: Vec<u8> = (0..=255u8).collect();
    c.put(M, "/v1/nodes/allbytes", bytes.clone()).ok_json(201, ID);
    assert_eq!(c.get(M, "/v1/nodes/allbytes?raw").body, bytes);
    let v = c.get(M, "/v1/nodes/allbytes?encoding=base64").ok_json(200, ID);
    assert_eq!(v["node"]["value"], base64(&bytes));

    // UTF-8 text is shown as text, with no encoding marker.
    c.put(M, "/v1/nodes/txt", "héllo wörld").ok_json(201, ID);
    let v = c.get(M, "/v1/nodes/txt").ok_json(200, ID);
    assert_eq!(v["node"]["value"], "héllo wörld");
    assert!(v["node"].get("encoding").is_none(), "{v}");
    assert_eq!(v["node"]["stat"]["data_length"], "héllo wörld".len());
    let v = c.get(M, "/v1/nodes/txt?encoding=base64").ok_json(200, ID);
    assert_eq!(v["node"]["value"], base64("héllo wörld".as_bytes()));
    assert_eq!(c.get(M, "/v1/nodes/txt?raw").body, "héllo wörld".as_bytes());
    // Empty value.
    c.put(M, "/v1/nodes/empty", "").ok_json(201, ID);
    assert_eq!(value_of(&c, "/empty").as_deref(), Some(""));
    assert_eq!(c.get(M, "/v1/nodes/empty?raw").body, b"");

    // Bad base64 and unknown encodings are 400.
    c.put(M, "/v1/nodes/bad?encoding=base64", "!!!not base64").error(400, "invalid_request");
    c.put(M, "/v1/nodes/bad?encoding=rot13", "x").error(400, "invalid_request");
    c.get(M, "/v1/nodes/txt?encoding=rot13").error(400, "invalid_request");
    assert_eq!(value_of(&c, "/bad"), None);
    // A raw read of a missing node is still a JSON 404.
    c.get(M, "/v1/nodes/missing?raw").error(404, "not_found");
}

#[test]
fn transactions_compare_then_success_or_failure_atomically() {
    let c = one();
    c.put(M, "/v1/nodes/a", "x").ok_json(201, ID);
    for i in 0..5 {
        c.put(M, "/v1/nodes/b", format!("b{i}")).ok_json(if i == 0 { 201 } else { 200 }, ID);
    }
    c.put(M, "/v1/nodes/q", "").ok_json(201, ID);
    c.put(M, "/v1/nodes/e", "eee").ok_json(201, ID);
    let before = revision(&c);

    // The example of DESIGN §8.
    let txn = json!({
        "compare": [{"path": "/a", "target": "value",   "op": "==", "value": "x"},
                    {"path": "/b", "target": "version", "op": ">",  "value": 3},
                    {"path": "/c", "target": "exists",  "op": "==", "value": false}],
        "success": [{"op": "set",    "path": "/a", "value": "y"},
                    {"op": "create", "path": "/q/item-", "value": "z", "sequential": true, "lease": null},
                    {"op": "delete", "path": "/b", "recursive": false},
                    {"op": "get",    "path": "/e"}],
        "failure": [{"op": "get", "path": "/a"}]
    });
    let v = c.post_json(M, "/v1/txn", &txn).ok_json(200, ID);
    assert_eq!(v["succeeded"], true, "{v}");
    let rev = v["header"]["revision"].as_u64().unwrap();
    assert_eq!(rev, before + 1, "a transaction is one revision: {v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{v}");
    assert_eq!(results[0]["op"], "set");
    assert_eq!(results[0]["node"]["value"], "y");
    assert_eq!(results[0]["prev"]["value"], "x");
    assert_eq!(results[0]["node"]["stat"]["mod_revision"], rev);
    assert_eq!(results[1]["op"], "create");
    let created = results[1]["node"]["path"].as_str().unwrap().to_owned();
    assert!(created.starts_with("/q/item-") && created.len() == "/q/item-".len() + 10, "{created}");
    assert_eq!(results[1]["node"]["stat"]["create_revision"], rev);
    assert_eq!(results[2]["op"], "delete");
    assert_eq!(results[2]["deleted"], 1);
    assert_eq!(results[2]["node"]["value"], "b4");
    assert_eq!(results[3]["op"], "get");
    assert_eq!(results[3]["node"]["value"], "eee");
    assert_eq!(value_of(&c, "/a").as_deref(), Some("y"));
    assert_eq!(value_of(&c, "/b"), None);
    assert_eq!(value_of(&c, &created).as_deref(), Some("z"));

    // The same transaction again: /a is now "y", so the failure branch runs.
    let v = c.post_json(M, "/v1/txn", &txn).ok_json(200, ID);
    assert_eq!(v["succeeded"], false, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["results"][0]["op"], "get");
    assert_eq!(v["results"][0]["node"]["value"], "y");
    assert_eq!(revision(&c), rev, "a read-only branch does not make a revision");
    assert_eq!(value_of(&c, "/b"), None);

    // A missing node fails every target but exists; a get of a missing node is null.
    for (target, op, value, want) in [
        ("version", "==", json!(0), false),
        ("mod_revision", ">", json!(0), false),
        ("create_revision", "!=", json!(0), false),
        ("value", "==", json!(""), false),
        ("exists", "==", json!(false), true),
        ("exists", "!=", json!(true), true),
    ] {
        let t = json!({"compare": [{"path": "/missing", "target": target, "op": op, "value": value}],
                       "success": [{"op": "get", "path": "/missing"}]});
        let v = c.post_json(M, "/v1/txn", &t).ok_json(200, ID);
        assert_eq!(v["succeeded"], want, "{target} {op} {value}: {v}");
        if want {
            assert_eq!(v["results"][0]["node"], Value::Null, "{v}");
        }
    }
    // Comparison operators on an existing node (/a: version 1, value "y").
    for (target, op, value, want) in [
        ("version", "<", json!(2), true),
        ("version", ">", json!(1), false),
        ("version", "!=", json!(1), false),
        ("value", "!=", json!("x"), true),
        ("value", ">", json!("x"), true),
        ("mod_revision", "==", json!(rev), true),
        ("create_revision", "<", json!(rev), true),
    ] {
        let t = json!({"compare": [{"path": "/a", "target": target, "op": op, "value": value}]});
        let v = c.post_json(M, "/v1/txn", &t).ok_json(200, ID);
        assert_eq!(v["succeeded"], want, "/a {target} {op} {value}: {v}");
    }

    // An operation that fails aborts the whole transaction: nothing is written.
    let t = json!({"success": [{"op": "set", "path": "/a", "value": "z"},
                               {"op": "create", "path": "/e", "value": "dup"}]});
    c.post_json(M, "/v1/txn", &t).error(409, "already_exists");
    assert_eq!(value_of(&c, "/a").as_deref(), Some("y"));
    let t = json!({"success": [{"op": "set", "path": "/a", "value": "z"},
                               {"op": "set", "path": "/e", "value": "w", "version": 7}]});
    c.post_json(M, "/v1/txn", &t).error(409, "version_conflict");
    assert_eq!(value_of(&c, "/a").as_deref(), Some("y"));
    assert_eq!(value_of(&c, "/e").as_deref(), Some("eee"));
    assert_eq!(revision(&c), rev);

    // Ops with encodings, list, and a later op seeing an earlier one's write.
    let t = json!({"success": [{"op": "set", "path": "/bin", "value": "AP8=", "encoding": "base64"},
                               {"op": "create", "path": "/l", "value": ""},
                               {"op": "create", "path": "/l/one", "value": "1"},
                               {"op": "list", "path": "/l"}]});
    let v = c.post_json(M, "/v1/txn", &t).ok_json(200, ID);
    assert_eq!(v["succeeded"], true);
    assert_eq!(c.get(M, "/v1/nodes/bin?raw").body, vec![0u8, 255]);
    assert_eq!(v["results"][3]["op"], "list");
    assert_eq!(v["results"][3]["nodes"][0]["path"], "/l/one", "{v}");
    assert_eq!(v["results"][3]["nodes"][0]["value"], "1", "{v}");

    // Malformed transactions are 400 invalid_request and write nothing.
    let now = revision(&c);
    for body in [
        "{",
        "",
        r#"{"success": [{"op": "frob", "path": "/a"}]}"#,
        r#"{"success": [{"op": "get"}]}"#,
        r#"{"compare": [{"path": "/a", "target": "version", "op": "==", "value": "x"}]}"#,
        r#"{"compare": [{"path": "/a", "target": "colour", "op": "==", "value": 1}]}"#,
        r#"{"compare": [{"path": "/a", "target": "version", "op": "~", "value": 1}]}"#,
        r#"{"compare": [{"path": "/a", "target": "exists", "op": "<", "value": true}]}"#,
        r#"{"sucess": []}"#,
    ] {
        c.request(M, Method::POST, "/v1/txn", body.as_bytes().to_vec()).error(400, "invalid_request");
    }
    assert_eq!(revision(&c), now);
}

#[test]
fn reads_at_past_revisions() {
    let c = one();
    let mut revs = Vec::new();
    for (i, value) in ["one", "two", "three"].iter().enumerate() {
        let v = c.put(M, "/v1/nodes/h", *value).ok_json(if i == 0 { 201 } else { 200 }, ID);
        revs.push(v["header"]["revision"].as_u64().unwrap());
        // Another node's write in between.
        c.put(M, &format!("/v1/nodes/other{i}"), "o").ok_json(201, ID);
    }
    let v = c.delete(M, "/v1/nodes/h").ok_json(200, ID);
    let deleted_at = v["header"]["revision"].as_u64().unwrap();
    let now = revision(&c);

    for (i, value) in ["one", "two", "three"].iter().enumerate() {
        for at in [revs[i], revs[i] + 1] {
            let v = c.get(M, &format!("/v1/nodes/h?revision={at}")).ok_json(200, ID);
            assert_eq!(v["node"]["value"], *value, "at {at}: {v}");
            assert_eq!(v["node"]["stat"]["mod_revision"], revs[i]);
            assert_eq!(v["node"]["stat"]["version"], i as u64);
            assert_eq!(v["node"]["stat"]["create_revision"], revs[0]);
            assert_eq!(v["header"]["revision"], now, "the header tells the current revision");
        }
    }
    // Raw and base64 reads at a revision.
    assert_eq!(c.get(M, &format!("/v1/nodes/h?raw&revision={}", revs[1])).body, b"two");
    let v = c.get(M, &format!("/v1/nodes/h?encoding=base64&revision={}", revs[0])).ok_json(200, ID);
    assert_eq!(v["node"]["value"], base64(b"one"));
    // Before it was created and after it was deleted, it does not exist.
    c.get(M, &format!("/v1/nodes/h?revision={}", revs[0] - 1)).error(404, "not_found");
    c.get(M, &format!("/v1/nodes/h?revision={deleted_at}")).error(404, "not_found");
    c.get(M, "/v1/nodes/h").error(404, "not_found");
    // Listings at a revision.
    let v = c.get(M, &format!("/v1/nodes?children&revision={}", revs[1])).ok_json(200, ID);
    assert_eq!(v["revision"], revs[1]);
    assert_eq!(children_names(&v), vec!["h", "other0"]);
    let v = c.get(M, &format!("/v1/nodes?recursive&revision={}", revs[2])).ok_json(200, ID);
    let paths: Vec<&str> =
        v["nodes"].as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(paths, vec!["/h", "/other0", "/other1"]);
    assert_eq!(v["nodes"][0]["value"], "three");
    // The future is refused.
    let e = c.get(M, &format!("/v1/nodes/other0?revision={}", now + 1)).error(400, "future_revision");
    assert!(e["message"].as_str().unwrap().contains(&now.to_string()), "{e}");
    c.get(M, &format!("/v1/nodes?children&revision={}", now + 100)).error(400, "future_revision");
    c.get(M, "/v1/nodes/other0?revision=abc").error(400, "invalid_request");
    c.get(M, "/v1/nodes/other0?revision=-1").error(400, "invalid_request");
    // Revision 0 is the empty namespace with its root.
    assert_eq!(c.get(M, "/v1/nodes?children&revision=0").ok_json(200, ID)["children"], json!([]));
}

#[test]
fn history_compaction_makes_old_revisions_410() {
    let c = Cluster::start_with(1, &["--history-revisions", "10"]);
    let first = c.put(M, "/v1/nodes/x", "0").ok_json(201, ID)["header"]["revision"].as_u64().unwrap();
    for i in 1..40 {
        c.put(M, "/v1/nodes/x", format!("{i}")).ok_json(200, ID);
    }
    // The compactor runs in the background: wait for it.
    let e = eventually(Duration::from_secs(20), "history compaction", || {
        let r = c.get(M, &format!("/v1/nodes/x?revision={first}"));
        (r.status == 410).then(|| r.error(410, "compacted"))
    });
    let compact = e["compact_revision"].as_u64().unwrap_or_else(|| panic!("no compact_revision: {e}"));
    assert!(compact > first, "{e}");
    assert!(e["message"].as_str().unwrap().contains(&compact.to_string()), "{e}");
    // The oldest revision still available is readable and right.
    let v = c.get(M, &format!("/v1/nodes/x?revision={compact}")).ok_json(200, ID);
    assert_eq!(v["node"]["value"], (compact - first).to_string(), "{v}");
    c.get(M, &format!("/v1/nodes?children&revision={}", compact - 1)).error(410, "compacted");
    let info = c.get(M, "/v1/cluster").ok_json(200, ID);
    assert!(info["cluster"]["compact_revision"].as_u64().unwrap() >= compact, "{info}");
    assert_eq!(value_of(&c, "/x").as_deref(), Some("39"));
}

#[test]
fn children_pages_are_consistent_at_the_first_pages_revision() {
    let c = one();
    c.put(M, "/v1/nodes/pg", "").ok_json(201, ID);
    let original: Vec<String> = (0..25).map(|i| format!("c-{:02}", i * 2)).collect();
    for name in &original {
        c.put(M, &format!("/v1/nodes/pg/{name}"), name.as_str()).ok_json(201, ID);
    }
    // A grandchild must not show up as a child.
    c.put(M, "/v1/nodes/pg/c-10/grand", "g").ok_json(201, ID);
    let start = revision(&c);

    let mut names = Vec::new();
    let mut url = "/v1/nodes/pg?children&limit=10".to_owned();
    let mut pages = 0;
    loop {
        let v = c.get(M, &url).ok_json(200, ID);
        pages += 1;
        assert_eq!(v["revision"], start, "every page reads at the first page's revision: {v}");
        assert_eq!(v["path"], "/pg");
        let page = children_names(&v);
        assert!(page.len() <= 10, "{v}");
        for child in v["children"].as_array().unwrap() {
            assert!(child["stat"]["create_revision"].as_u64().unwrap() <= start, "{child}");
            assert!(
                child.get("value").is_none() || child["value"].is_null(),
                "children listings carry no value"
            );
        }
        names.extend(page);
        // Change the directory between pages: add before and after the cursor, delete and
        // set entries of later pages.
        c.put(M, &format!("/v1/nodes/pg/c-{:02}a", pages * 7), "new").ok_json(201, ID);
        c.put(M, &format!("/v1/nodes/pg/z-{pages}"), "new").ok_json(201, ID);
        c.put(M, "/v1/nodes/pg/a-first", format!("{pages}")).ok_json(if pages == 1 { 201 } else { 200 }, ID);
        if pages == 1 {
            c.delete(M, "/v1/nodes/pg/c-30").ok_json(200, ID);
            c.delete(M, "/v1/nodes/pg/c-48").ok_json(200, ID);
            c.put(M, "/v1/nodes/pg/c-40", "changed").ok_json(200, ID);
        }
        match v["next"].as_str() {
            Some(next) => {
                assert!(pages < 3, "25 children in pages of 10 is 3 pages: {v}");
                assert_eq!(v["children"].as_array().unwrap().len(), 10);
                url = format!("/v1/nodes/pg?children&limit=10&after={next}");
            }
            None => {
                assert_eq!(v["next"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, original, "pages equal the listing at the first page's revision");
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicates across pages");
    // The same listing read directly at that revision.
    let v = c.get(M, &format!("/v1/nodes/pg?children&revision={start}")).ok_json(200, ID);
    assert_eq!(children_names(&v), original);
    assert_eq!(v["next"], Value::Null);
    // The current listing has changed (so the test did exercise concurrent changes).
    let now = children_names(&c.get(M, "/v1/nodes/pg?children").ok_json(200, ID));
    assert!(now.contains(&"a-first".to_owned()) && !now.contains(&"c-30".to_owned()), "{now:?}");
    assert_eq!(now.len(), 25 - 2 + 3 + 3 + 1);

    // Paging limits and cursors.
    c.get(M, "/v1/nodes/pg?children&limit=0").error(400, "invalid_request");
    c.get(M, "/v1/nodes/pg?children&limit=x").error(400, "invalid_request");
    c.get(M, "/v1/nodes/pg?children&after=%21%21garbage").error(400, "invalid_request");
    c.get(M, "/v1/nodes/nope?children").error(404, "not_found");
    let v = c.get(M, "/v1/nodes/pg?children&limit=1").ok_json(200, ID);
    assert_eq!(children_names(&v), vec!["a-first"]);
    assert!(v["next"].is_string());
}

#[test]
fn recursive_listing_and_its_pages() {
    let c = one();
    for (path, value) in
        [("/r", "root"), ("/r/a", "1"), ("/r/a/b", "2"), ("/r/a/b/c", "3"), ("/r/d", "4"), ("/rx", "x")]
    {
        c.put(M, &format!("/v1/nodes{path}"), value).ok_json(201, ID);
    }
    let v = c.get(M, "/v1/nodes/r?recursive").ok_json(200, ID);
    let nodes = v["nodes"].as_array().unwrap();
    let got: Vec<(&str, &str)> =
        nodes.iter().map(|n| (n["path"].as_str().unwrap(), n["value"].as_str().unwrap())).collect();
    assert_eq!(got, vec![("/r/a", "1"), ("/r/a/b", "2"), ("/r/a/b/c", "3"), ("/r/d", "4")], "{v}");
    assert_eq!(v["next"], Value::Null);
    assert_eq!(nodes[0]["stat"]["num_children"], 1);
    let rev = v["revision"].as_u64().unwrap();

    // Pages of two.
    let v1 = c.get(M, "/v1/nodes/r?recursive&limit=2").ok_json(200, ID);
    assert_eq!(v1["nodes"].as_array().unwrap().len(), 2);
    let next = v1["next"].as_str().unwrap().to_owned();
    c.put(M, "/v1/nodes/r/a/b/c2", "new").ok_json(201, ID);
    let v2 = c.get(M, &format!("/v1/nodes/r?recursive&limit=2&after={next}")).ok_json(200, ID);
    assert_eq!(v2["revision"], rev);
    let paths: Vec<&str> = v1["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v2["nodes"].as_array().unwrap())
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["/r/a", "/r/a/b", "/r/a/b/c", "/r/d"]);
    assert_eq!(v2["next"], Value::Null);

    // Children of /r.
    let v = c.get(M, "/v1/nodes/r?children").ok_json(200, ID);
    assert_eq!(children_names(&v), vec!["a", "d"]);
    assert_eq!(v["children"][0]["stat"]["num_children"], 1);
    // Whole namespace from the root.
    let v = c.get(M, "/v1/nodes?recursive").ok_json(200, ID);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 7, "{v}");
    assert_eq!(v["nodes"][0]["path"], "/r");
    c.get(M, "/v1/nodes/none?recursive").error(404, "not_found");
    c.get(M, "/v1/nodes/r?recursive&children").error(400, "invalid_request");
}

#[test]
fn query_parameters_are_checked() {
    let c = one();
    c.put(M, "/v1/nodes/n", "v").ok_json(201, ID);
    let e = c.get(M, "/v1/nodes/n?bogus=1").error(400, "invalid_request");
    assert!(e["message"].as_str().unwrap().contains("bogus"), "{e}");
    c.get(M, "/v1/nodes/n?sequential").error(400, "invalid_request");
    c.put(M, "/v1/nodes/n?bogus", "x").error(400, "invalid_request");
    c.put(M, "/v1/nodes/n?recursive", "x").error(400, "invalid_request");
    c.post(M, "/v1/nodes/m?version=1", "x").error(400, "invalid_request");
    c.delete(M, "/v1/nodes/n?parents").error(400, "invalid_request");
    c.post_json(M, "/v1/txn?bogus=1", &json!({})).error(400, "invalid_request");
    c.get(M, "/v1/nodes/n?children=maybe").error(400, "invalid_request");
    c.put(M, "/v1/nodes/n?version=x", "x").error(400, "invalid_request");
    c.get(M, "/v1/nodes/n?raw&children").error(400, "invalid_request");
    c.get(M, "/v1/nodes/n?consistency=eventual").error(400, "invalid_request");
    // Nothing was written by the refused calls.
    assert_eq!(value_of(&c, "/n").as_deref(), Some("v"));
    assert_eq!(value_of(&c, "/m"), None);
    // Known parameters with explicit boolean values, and serializable reads.
    let v = c.get(M, "/v1/nodes/n?children=false&raw=0&consistency=serializable").ok_json(200, ID);
    assert_eq!(v["node"]["value"], "v");
    let v = c.get(M, "/v1/nodes/n?consistency=linearizable").ok_json(200, ID);
    assert_eq!(v["node"]["value"], "v");
    let v = c.get(M, "/v1/nodes?children=true&consistency=serializable").ok_json(200, ID);
    assert_eq!(children_names(&v), vec!["n"]);
    // An empty transaction succeeds and writes nothing.
    let before = revision(&c);
    let v = c.post_json(M, "/v1/txn", &json!({})).ok_json(200, ID);
    assert_eq!(v["succeeded"], true);
    assert_eq!(v["results"], json!([]));
    assert_eq!(revision(&c), before);
}

#[test]
fn cluster_health_ready_metrics_and_routing() {
    let c = one();
    c.put(M, "/v1/nodes/a", "1").ok_json(201, ID);
    let v = c.get(M, "/v1/cluster").ok_json(200, ID);
    let cl = &v["cluster"];
    assert_eq!(cl["leader"], ID, "{v}");
    assert_eq!(cl["member"], ID);
    assert!(cl["term"].as_u64().unwrap() >= 1);
    assert_eq!(cl["revision"], v["header"]["revision"]);
    let members = cl["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{v}");
    assert_eq!(members[0]["id"], ID);
    assert_eq!(members[0]["role"], "leader");
    assert_eq!(members[0]["voter"], true);
    assert_eq!(members[0]["peer_addr"], c.peer_addr(M).to_string());
    let limits = &v["limits"];
    for key in [
        "max_value_bytes",
        "max_request_bytes",
        "max_txn_ops",
        "max_path_bytes",
        "default_page_limit",
        "max_page_limit",
    ] {
        assert!(limits[key].as_u64().unwrap_or(0) > 0, "limits.{key}: {v}");
    }
    assert_eq!(limits["max_txn_ops"], 1024);
    assert_eq!(limits["max_path_bytes"], 4096);

    let v = c.get(M, "/health").ok_json(200, ID);
    assert_eq!(v["header"]["leader"], ID);
    let v = c.get(M, "/ready").ok_json(200, ID);
    assert_eq!(v["header"]["revision"], 1);

    let r = c.get(M, "/metrics");
    r.expect_status(200);
    assert!(r.content_type().starts_with("text/plain"), "{}", r.content_type());
    let text = r.text();
    assert!(text.lines().any(|l| l.starts_with("cairn_")), "no cairn_ metric:\n{text}");
    assert!(text.contains("# TYPE cairn_"), "not Prometheus text:\n{text}");

    // Unknown routes and wrong methods are JSON errors.
    for path in ["/v1/nope", "/nope", "/v2/nodes/a", "/v1/nodesx"] {
        c.get(M, path).error(404, "not_found");
    }
    for (method, path) in [
        (Method::PATCH, "/v1/nodes/a"),
        (Method::GET, "/v1/txn"),
        (Method::DELETE, "/v1/cluster"),
        (Method::PUT, "/health"),
        (Method::POST, "/metrics"),
    ] {
        let r: Resp = c.request(M, method.clone(), path, Vec::new());
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert!(r.content_type().starts_with("application/json"), "{method} {path}: {}", r.text());
        let e = r.json();
        assert!(e["code"].is_string() && e["message"].is_string(), "{method} {path}: {e}");
    }
    // Membership calls validate their input.
    c.post_json(M, "/v1/cluster/members", &json!({"id": 0, "peer_addr": "127.0.0.1:1"}))
        .error(400, "invalid_request");
    c.post_json(M, "/v1/cluster/members", &json!({"id": 5, "peer_addr": "nowhere"}))
        .error(400, "invalid_request");
    c.request(M, Method::POST, "/v1/cluster/members", b"{".to_vec()).error(400, "invalid_request");
    c.post_json(M, "/v1/cluster/members", &json!({"id": 1, "peer_addr": "127.0.0.1:1"}))
        .error(409, "already_exists");
    c.post(M, "/v1/cluster/members/9/promote", "").error(404, "not_found");
    c.post(M, "/v1/cluster/members/x/promote", "").error(400, "invalid_request");
    c.delete(M, "/v1/cluster/members/9").error(404, "not_found");
    assert_eq!(c.get(M, "/v1/cluster").ok_json(200, ID)["cluster"]["members"].as_array().unwrap().len(), 1);
}

#[test]
fn kill_9_and_restart_keeps_every_acknowledged_write() {
    let mut c = one();
    let http = c.http().clone();
    let base = c.url(M, "/v1/nodes");
    // Four concurrent writers, so that writes share log entries (group commit).
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (http, base) = (http.clone(), base.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for k in 0..50 {
                    let path = format!("/d/t{t}-k{k:03}");
                    let r = http
                        .put(format!("{base}{path}?parents"))
                        .body(format!("value-{t}-{k}"))
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201, "{path}: {}", r.text().unwrap_or_default());
                    acked.push((path, format!("value-{t}-{k}")));
                }
                acked
            })
        })
        .collect();
    let acked: Vec<(String, String)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert_eq!(acked.len(), 200);
    // Overwrite some keys so the last acknowledged value is the one to find.
    let mut expected: std::collections::BTreeMap<String, String> = acked.into_iter().collect();
    for (i, (path, value)) in expected.iter_mut().enumerate().filter(|(i, _)| i % 10 == 0) {
        *value = format!("overwritten-{i}");
        c.put(M, &format!("/v1/nodes{path}"), value.as_str()).ok_json(200, ID);
    }
    let rev = revision(&c);

    c.kill(M);
    assert!(c.try_request(M, Method::GET, "/health", Vec::new()).is_err(), "the member is dead");
    c.restart(M);

    assert_eq!(revision(&c), rev, "the revision survives a crash");
    for (path, value) in &expected {
        assert_eq!(value_of(&c, path).as_ref(), Some(value), "{path} after kill -9 and restart");
    }
    let v = c.get(M, "/v1/nodes/d?children").ok_json(200, ID);
    assert_eq!(v["children"].as_array().unwrap().len(), 200);
    // It keeps working, and revisions continue from where they were.
    let v = c.put(M, "/v1/nodes/after-restart", "yes").ok_json(201, ID);
    assert_eq!(v["header"]["revision"], rev + 1);
    // A second crash right after a write.
    c.kill(M);
    c.restart(M);
    assert_eq!(value_of(&c, "/after-restart").as_deref(), Some("yes"));
}

#[test]
fn restart_after_snapshots_and_log_purge_keeps_state_and_history() {
    let mut c = Cluster::start_with(1, &["--snapshot-logs", "10"]);
    let mut created = Vec::new();
    let mut n = 0;
    let purged = loop {
        for _ in 0..50 {
            let v = c.put(M, &format!("/v1/nodes/s{n:04}"), format!("v{n}")).ok_json(201, ID);
            created.push(v["header"]["revision"].as_u64().unwrap());
            n += 1;
        }
        let v = c.get(M, "/v1/cluster").ok_json(200, ID);
        if let Some(p) = v["cluster"]["purged_index"].as_u64() {
            assert!(v["cluster"]["snapshot_index"].as_u64().is_some(), "{v}");
            break p;
        }
        assert!(n < 2000, "no log purge after {n} writes with --snapshot-logs 10: {v}");
    };
    assert!(purged > 0);
    // Overwrite one key so that history matters.
    c.put(M, "/v1/nodes/s0000", "changed").ok_json(200, ID);
    let rev = revision(&c);
    c.kill(M);
    c.restart(M);
    assert_eq!(revision(&c), rev);
    let v = c.get(M, "/v1/nodes?children&limit=10000").ok_json(200, ID);
    assert_eq!(v["children"].as_array().unwrap().len(), n);
    for k in (0..n).step_by(7).chain([n - 1]) {
        let want = if k == 0 { "changed".to_owned() } else { format!("v{k}") };
        assert_eq!(value_of(&c, &format!("/s{k:04}")), Some(want));
    }
    let v = c.get(M, &format!("/v1/nodes/s0000?revision={}", created[0])).ok_json(200, ID);
    assert_eq!(v["node"]["value"], "v0");
    let v = c.get(M, &format!("/v1/nodes?children&revision={}", created[9])).ok_json(200, ID);
    assert_eq!(v["children"].as_array().unwrap().len(), 10);
    c.put(M, "/v1/nodes/after", "x").ok_json(201, ID);
}

/// Naming a lease that does not exist is refused before anything is written.
#[test]
fn unknown_lease_is_404_lease_not_found() {
    let c = one();
    c.put(M, "/v1/nodes/eph?lease=424242", "x").error(404, "lease_not_found");
    c.post(M, "/v1/nodes/eph?lease=424242", "x").error(404, "lease_not_found");
    let t = json!({"success": [{"op": "create", "path": "/eph", "value": "x", "lease": 424242}]});
    c.post_json(M, "/v1/txn", &t).error(404, "lease_not_found");
    assert_eq!(value_of(&c, "/eph"), None);
    c.put(M, "/v1/nodes/eph?lease=abc", "x").error(400, "invalid_request");
}

/// Group commit puts concurrent writes into one log entry; each must still be its own
/// revision, and later commands of an entry must see earlier ones (CAS, create-only).
#[test]
fn concurrent_writes_get_distinct_revisions_and_see_each_other() {
    let c = one();
    c.put(M, "/v1/nodes/ctr", "0").ok_json(201, ID);
    c.put(M, "/v1/nodes/seq", "").ok_json(201, ID);
    let start = revision(&c);
    let base = c.url(M, "/v1/nodes");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (http, base) = (c.http().clone(), base.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new(); // (kind, revision, detail)
                for k in 0..15 {
                    // Everyone races to create the same node: exactly one wins.
                    let r = http.post(format!("{base}/race{k}")).body(format!("t{t}")).send().unwrap();
                    let status = r.status().as_u16();
                    let v: Value = r.json().unwrap();
                    match status {
                        201 => out.push(("race", v["header"]["revision"].as_u64().unwrap(), format!("{k}"))),
                        409 => assert_eq!(v["code"], "already_exists", "{v}"),
                        _ => panic!("create race: {status} {v}"),
                    }
                    // Sequential creates: each gets its own name.
                    let r = http.post(format!("{base}/seq/n-?sequential")).body("").send().unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                    let v: Value = r.json().unwrap();
                    let path = v["node"]["path"].as_str().unwrap().to_owned();
                    out.push(("seq", v["header"]["revision"].as_u64().unwrap(), path));
                    // CAS increment of a shared counter, retried on conflict.
                    loop {
                        let g: Value = http.get(format!("{base}/ctr")).send().unwrap().json().unwrap();
                        let version = g["node"]["stat"]["version"].as_u64().unwrap();
                        let n: u64 = g["node"]["value"].as_str().unwrap().parse().unwrap();
                        let r = http
                            .put(format!("{base}/ctr?version={version}"))
                            .body(format!("{}", n + 1))
                            .send()
                            .unwrap();
                        let status = r.status().as_u16();
                        let v: Value = r.json().unwrap();
                        match status {
                            200 => {
                                assert_eq!(v["prev"]["stat"]["version"], version, "{v}");
                                out.push((
                                    "cas",
                                    v["header"]["revision"].as_u64().unwrap(),
                                    format!("{version}"),
                                ));
                                break;
                            }
                            409 => assert_eq!(v["code"], "version_conflict", "{v}"),
                            _ => panic!("CAS: {status} {v}"),
                        }
                    }
                }
                out
            })
        })
        .collect();
    let all: Vec<(&str, u64, String)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let count = |kind: &str| all.iter().filter(|w| w.0 == kind).count();
    assert_eq!(count("race"), 15, "exactly one create of each contested path succeeds");
    assert_eq!(count("seq"), 8 * 15);
    assert_eq!(count("cas"), 8 * 15);
    let seq_paths: BTreeSet<&String> = all.iter().filter(|w| w.0 == "seq").map(|w| &w.2).collect();
    assert_eq!(seq_paths.len(), 8 * 15, "sequential names must be unique");
    let cas_versions: BTreeSet<&String> = all.iter().filter(|w| w.0 == "cas").map(|w| &w.2).collect();
    assert_eq!(cas_versions.len(), 8 * 15, "two CAS writes succeeded on the same version");
    // One revision per successful write, no gaps, no sharing.
    let revs: BTreeSet<u64> = all.iter().map(|w| w.1).collect();
    assert_eq!(revs.len(), all.len(), "two writes answered with the same revision");
    assert_eq!(revision(&c), start + all.len() as u64);
    assert_eq!(*revs.iter().next().unwrap(), start + 1);
    let v = c.get(M, "/v1/nodes/ctr").ok_json(200, ID);
    assert_eq!(v["node"]["value"], (8 * 15).to_string());
    assert_eq!(v["node"]["stat"]["version"], 8 * 15);
    let v = c.get(M, "/v1/nodes/seq").ok_json(200, ID);
    assert_eq!(v["node"]["stat"]["num_children"], 8 * 15);
}
