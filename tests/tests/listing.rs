#![allow(clippy::unwrap_used)]
//! A directory of 100,000 children, listed page by page: every child exactly once, in
//! order, and the member's memory bounded by the page, not the directory.

use cairn_tests::{json, Cluster};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hundred_thousand_children_page_with_bounded_memory() {
    const N: usize = 100_000;
    const PER_TXN: usize = 1000;
    let c = Cluster::start(1);
    c.put(0, "/v1/nodes/big", "").expect_status(201);
    let value = "v".repeat(100);
    for t in 0..N / PER_TXN {
        let ops: Vec<_> = (0..PER_TXN)
            .map(|i| json!({"op": "create", "path": format!("/big/c{:06}", t * PER_TXN + i), "value": value}))
            .collect();
        let v = c.post_json(0, "/v1/txn", &json!({ "success": ops })).ok_json(200, 1);
        assert_eq!(v["succeeded"], true);
    }
    let pid = c.pid(0).unwrap();
    let before = rss_kib(pid);
    let mut peak = before;
    let mut names = Vec::with_capacity(N);
    let mut next: Option<String> = None;
    let mut pinned = None;
    loop {
        let target = match &next {
            None => "/v1/nodes/big?children&limit=1000".to_owned(),
            Some(cursor) => format!("/v1/nodes/big?children&limit=1000&after={cursor}"),
        };
        let v = c.get(0, &target).ok_json(200, 1);
        let rev = v["revision"].as_u64().unwrap();
        assert_eq!(*pinned.get_or_insert(rev), rev, "every page reads the first page's revision");
        let page = v["children"].as_array().unwrap();
        assert!(page.len() <= 1000);
        names.extend(page.iter().map(|ch| ch["name"].as_str().unwrap().to_owned()));
        peak = peak.max(rss_kib(pid));
        match v["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(names.len(), N);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("RSS before paging {} MiB, peak while paging {} MiB", before / 1024, peak / 1024);
    // A page is ~1000 small entries; a leak or a whole-directory buffer would be far larger.
    assert!(growth_mib < 64, "paging grew the member by {growth_mib} MiB");
    // The byte budget also holds for a large limit.
    let v = c.get(0, "/v1/nodes/big?recursive&limit=10000").ok_json(200, 1);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 10_000);
    assert!(v["next"].is_string());
}
