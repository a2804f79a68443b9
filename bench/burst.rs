//! Benchmark helper: a connection burst. Opens N connections at once, each sending one
//! 1-hook POST (a fresh hookId) and reading the answer, and prints one machine-readable line:
//! `BURST n=.. ok=.. errors=.. p50_us=.. p99_us=.. max_us=..` (latency from the burst's start
//! to each answer, connect included).
//!
//! Usage: `bench-burst 127.0.0.1:18092 /hooks/bizmessage 1000 PREFIX`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn body(id: &str) -> String {
    format!(
        r#"{{"hooksId":"{id}","productName":"KakaoTalk Bizmessage","appKey":"Xk2abcDEF9tq","event":"MESSAGE_RESULT_UPDATE","hooks":[{{"hookId":"{id}","kakaoMessageType":"ALIMTALK_NORMAL","requestId":"20261128101455aBcD1234","recipientSeq":1,"recipientNo":"01012345678","resultCode":"1000"}}]}}"#
    )
}

async fn one(addr: SocketAddr, path: String, id: String) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let body = body(&id);
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(512);
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(path), Some(n), Some(prefix)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        eprintln!("usage: bench-burst ADDR PATH N PREFIX");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("an address");
    let n: usize = n.parse().expect("a count");
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (path, id) = (path.clone(), format!("{prefix}-{i}"));
            tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(30), one(addr, path, id)).await;
                (
                    start.elapsed(),
                    r.map_err(|_| "timeout".to_string()).and_then(|r| r),
                )
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0usize;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok((d, Ok(()))) => lat.push(d),
            Ok((_, Err(e))) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "BURST n={n} ok={} errors={errors} p50_us={} p99_us={} max_us={}{}",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat.last().map_or(0, |d| d.as_micros()),
        first_error.map_or(String::new(), |e| format!(" first_error={e:?}"))
    );
}
