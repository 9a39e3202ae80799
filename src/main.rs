fn main() {
    for crd in retention_operator::api::all_crds() {
        println!("---\n{}", serde_saphyr::to_string(&crd).unwrap());
    }
}
