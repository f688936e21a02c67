//! A real Redis Cluster for the Redis store tests: three `redis-server` primaries on
//! loopback ports from a temp dir (cluster bus ports chosen free as well), joined with
//! `redis-cli --cluster create`, waited for until every node reports `cluster_state:ok`
//! (bounded polling). Only the processes started here are stopped, by their handles (Drop).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mxguard::store::{RedisSettings, RedisStore};

use super::{free_port, wait_up};

pub struct Cluster {
    nodes: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

/// `redis-cli -p PORT ARGS...`'s output (trimmed); panics if it cannot run.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli (package redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Cluster {
    /// Three (client, cluster bus) port pairs, free now.
    pub fn free_ports() -> Vec<(u16, u16)> {
        (0..3).map(|_| (free_port(), free_port())).collect()
    }

    pub async fn start() -> Cluster {
        Cluster::start_on(&Cluster::free_ports()).await
    }

    /// The cluster on these (client, bus) ports.
    pub async fn start_on(pairs: &[(u16, u16)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for (i, &(port, bus)) in pairs.iter().enumerate() {
            let d = dir.path().join(format!("n{i}"));
            std::fs::create_dir(&d).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .arg("--cluster-config-file")
                .arg(d.join("nodes.conf"))
                // A node that stops answering is marked failed after 1 s (the kill test).
                .args(["--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (package redis-server)");
            nodes.push(Some(child));
            ports.push(port);
        }
        for &p in &ports {
            wait_up(p).await;
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let ok = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli")
            .success();
        assert!(ok, "redis-cli --cluster create failed");
        let c = Cluster {
            nodes,
            ports,
            _dir: dir,
        };
        c.wait_state("ok").await;
        c
    }

    /// Polls (bounded: 15 s) until every running node reports `cluster_state:STATE`.
    pub async fn wait_state(&self, state: &str) {
        let want = format!("cluster_state:{state}");
        for _ in 0..300 {
            let all = self
                .running()
                .iter()
                .all(|&p| cli(p, &["cluster", "info"]).contains(&want));
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the cluster did not reach {want}");
    }

    /// The ports of the nodes still running.
    pub fn running(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// The seed list as `[store] cluster` takes it (one node is enough; two given).
    pub fn seeds(&self) -> Vec<String> {
        self.ports[..2]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    pub fn store(&self, prefix: &str) -> RedisStore {
        store_on(self.seeds(), prefix)
    }

    /// How many keys matching `pattern` node `port` holds (its own keyspace only).
    pub fn keys_on(&self, port: u16, pattern: &str) -> usize {
        cli(port, &["--scan", "--pattern", pattern]).lines().count()
    }

    /// The port of the node that owns `key`'s slot (a plain GET there answers; the others
    /// answer MOVED).
    pub fn owner(&self, key: &str) -> u16 {
        for &p in &self.ports {
            if !cli(p, &["get", key]).contains("MOVED") {
                return p;
            }
        }
        panic!("no node owns {key}");
    }

    /// Kills node `i` (SIGKILL) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A store with key prefix `prefix` on the cluster that `seeds` (`host:port`) belong to.
pub fn store_on(seeds: Vec<String>, prefix: &str) -> RedisStore {
    RedisStore::new(RedisSettings {
        url: "redis://127.0.0.1/0".into(),
        prefix: prefix.into(),
        timeout: Duration::from_millis(300),
        ban_retention: Duration::from_secs(30 * 86_400),
        sentinel: None,
        cluster: Some(mxguard::store::redis::ClusterSettings { nodes: seeds }),
    })
    .unwrap()
}
