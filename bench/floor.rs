//! Benchmark floor: a bare warp server that reads the request body and answers 200 with a tiny
//! JSON body. Whatever a warp-based receiver does on top of this costs throughput; this is the
//! ceiling (the "floor" of per-request overhead) any warp receiver can reach on this machine.
//!
//! It listens with bizrelay's default backlog (4096), so connection bursts compare like with
//! like.
//!
//! Usage: `bench-floor 127.0.0.1:18090`

use std::net::SocketAddr;

use warp::Filter;

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into())
        .parse()
        .expect("listen address such as 127.0.0.1:18090");
    let route = warp::any()
        .and(warp::body::bytes())
        .map(|body: bytes::Bytes| {
            let reply = warp::reply::json(&serde_json::json!({"ok": true, "bytes": body.len()}));
            warp::reply::with_status(reply, warp::http::StatusCode::OK)
        });
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("the listen address is free");
    let listener = socket.listen(4096).expect("listen");
    eprintln!("bench-floor listening on {addr}");
    warp::serve(route).incoming(listener).run().await;
}
