//! Prints manul's CustomResourceDefinitions (what manifests/crds.yaml holds). Writes stdout.

fn main() {
    print!("{}", manul_store::kubernetes::crds::crds_yaml());
}
