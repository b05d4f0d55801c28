use scimkit::Registry;
use scimkit::filter::Filter;
use scimkit_sql::{Dialect, translate};
const TWENTY: &str = concat!(
    r#"userName eq "bjensen@example.com" and displayName co "Babs Jensen" and title sw "Tour Guide" and "#,
    r#"userType eq "Employee" and active eq true and emails.value ew "@example.com" and emails.type eq "work" and "#,
    r#"name.familyName eq "Jensen" and name.givenName sw "Bar" and externalId pr or (meta.lastModified gt "2011-05-13T04:42:34Z" and "#,
    r#"meta.created lt "2030-01-01T00:00:00Z" and nickName ne "Babs" and locale eq "en-US" and timezone eq "America/Los_Angeles" and "#,
    r#"phoneNumbers.value co "555" and addresses.country eq "USA" and preferredLanguage sw "en" and ims.value pr and x509Certificates pr)"#
);
fn main() {
    let registry = Registry::core();
    let users = registry.resource_type("User").unwrap();
    let f: Filter = TWENTY.parse().unwrap();
    let n: usize = std::env::args().nth(1).map_or(1, |s| s.parse().unwrap());
    let mut total = 0;
    for _ in 0..n {
        let t = translate(std::hint::black_box(&f), &users, "cmp", Dialect::Sqlite);
        total += t.sql.len();
    }
    if n == 1 {
        let t = translate(&f, &users, "cmp", Dialect::Sqlite);
        println!("{}", t.sql);
    }
    println!("{total}");
}
