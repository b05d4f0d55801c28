//! A webhook receiver on a loopback port: it checks each delivery's Standard
//! Webhooks signature, keeps what it received, and answers as a test tells it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The secret the tests give the server.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: i64,
    pub body: Value,
}

impl Delivery {
    /// The scimkit event inside (`scimkit` claim).
    pub fn event(&self) -> &Value {
        &self.body["scimkit"]
    }
}

/// What the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 204.
    Ok,
    /// This status, with `Retry-After: 1`.
    Fail(u16),
    /// 204 after a pause.
    Slow(Duration),
}

pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Delivery>>>,
    pub answer: Arc<Mutex<Answer>>,
    /// Deliveries whose signature did not verify.
    pub forged: Arc<Mutex<usize>>,
}

impl Receiver {
    pub fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let forged = Arc::new(Mutex::new(0));
        let (r, a, f) = (received.clone(), answer.clone(), forged.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (r, a, f) = (r.clone(), a.clone(), f.clone());
                std::thread::spawn(move || serve(stream, &r, &a, &f));
            }
        });
        Receiver {
            url,
            received,
            answer,
            forged,
        }
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.received.lock().expect("lock").clone()
    }

    /// The deliveries once each, by `webhook-id`, in the order first received.
    pub fn unique(&self) -> Vec<Delivery> {
        let mut seen = std::collections::HashSet::new();
        self.deliveries()
            .into_iter()
            .filter(|d| seen.insert(d.id.clone()))
            .collect()
    }

    /// Waits until `done` holds of what was received (at most `secs` seconds).
    pub fn wait_for(&self, secs: u64, done: impl Fn(&[Delivery]) -> bool) -> bool {
        for _ in 0..secs * 20 {
            if done(&self.unique()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        done(&self.unique())
    }

    pub fn forged(&self) -> usize {
        *self.forged.lock().expect("lock")
    }
}

fn verify(id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(key) = b64.decode(SECRET.trim_start_matches("whsec_")) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    signature.split(' ').any(|s| s == expected)
}

fn serve(
    stream: TcpStream,
    received: &Mutex<Vec<Delivery>>,
    answer: &Mutex<Answer>,
    forged: &Mutex<usize>,
) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            headers.push(line);
        }
        let get = |name: &str| {
            headers.iter().find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let length: usize = get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let id = get("webhook-id").unwrap_or_default();
        let timestamp = get("webhook-timestamp").unwrap_or_default();
        let signature = get("webhook-signature").unwrap_or_default();
        if verify(&id, &timestamp, &body, &signature) {
            if let Ok(body) = serde_json::from_slice(&body) {
                received.lock().expect("lock").push(Delivery {
                    id,
                    timestamp: timestamp.parse().unwrap_or_default(),
                    body,
                });
            }
        } else {
            *forged.lock().expect("lock") += 1;
        }
        let now = *answer.lock().expect("lock");
        let reply = match now {
            Answer::Ok => "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
            Answer::Slow(pause) => {
                std::thread::sleep(pause);
                "HTTP/1.1 204 No Content\r\n\r\n".to_owned()
            }
            Answer::Fail(status) => {
                format!("HTTP/1.1 {status} Failing\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
            }
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
