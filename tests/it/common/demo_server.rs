//! The demo server as a child process: started with the test's command, its banner read until
//! it prints the `client query` command to run against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child server, killed when dropped.
pub struct Server(pub Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` (a demo server) and waits for the `client query` line of its banner.
pub fn start_demo(cmd: &mut Command) -> (Server, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("client query") {
                let _ = tx.send(line);
            }
        }
    });
    let printed = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo starts and prints the command to run");
    (server, printed)
}

/// The `client …` arguments of the command the banner prints (`cargo run --release -- client
/// query …` under cargo, `pension-gateway client query …` otherwise).
pub fn printed_args(printed: &str) -> Vec<String> {
    let words: Vec<&str> = printed.split_whitespace().collect();
    let from = words.iter().position(|w| *w == "client").unwrap();
    words[from..].iter().map(|w| w.to_string()).collect()
}
