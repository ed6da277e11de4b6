// Set-up shared by the rustdoc examples of `herald::apns` that send: no network in
// doctests, so they send to a closed local port, where every request fails to connect. Not a
// module of the crate: a doctest takes it in one hidden line, as an expression that evaluates
// to the `Endpoint`:
//
//     # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
//
// (The path is absolute for the reason `doc_push_p12.rs` gives.)
{
    // Bound, then closed when the listener drops at the end of this statement.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    herald::apns::Endpoint::custom(&format!("https://127.0.0.1:{port}")).unwrap()
}
