//! The exact tables of `get KIND -o ps` and `-o wide` for the fixed set of resources in
//! tests/data/golden-set.yaml, compared with tests/golden/<kind>-<format>.txt, on an embedded
//! store and on a real etcd member (the tables do not depend on the backend). With
//! MANUL_UPDATE_GOLDEN=1 the files are written instead; review the diff before committing.

mod support;

use support::{Fixture, data};

const TABLES: [(&str, &str); 12] = [
    ("ippool", "ps"),
    ("ippool", "wide"),
    ("node", "ps"),
    ("node", "wide"),
    ("bgppeer", "ps"),
    ("bgppeer", "wide"),
    ("bgpconfig", "ps"),
    ("bgpconfig", "wide"),
    ("ipamconfig", "ps"),
    ("ipamconfig", "wide"),
    ("workloadendpoint", "ps"),
    ("workloadendpoint", "wide"),
];

fn tables_match_the_golden_files(fixture: Fixture) {
    fixture.apply(&data("data/golden-set.yaml"));
    let update = std::env::var_os("MANUL_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (kind, format) in TABLES {
        let table = fixture.ok(&["get", kind, "-o", format]);
        let path = data(&format!("golden/{kind}-{format}.txt"));
        if update {
            std::fs::write(&path, &table).expect("write a golden file");
            continue;
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        if table != golden {
            mismatches.push(format!(
                "get {kind} -o {format} differs from {}:\n--- golden\n{golden}--- got\n{table}",
                path.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn tables_match_the_golden_files_on_the_embedded_store() {
    tables_match_the_golden_files(Fixture::embedded());
}

#[test]
fn tables_match_the_golden_files_on_etcd() {
    tables_match_the_golden_files(Fixture::etcd());
}
