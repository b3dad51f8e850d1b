//! sqlite-vec's `vec0` KNN against the exact in-memory scan Aegis's SQLite store uses, on
//! the same 100 k random unit vectors of 384 dimensions, k = 8, 200 queries per row.

use std::time::Instant;

use rusqlite::{Connection, ffi::sqlite3_auto_extension};
use sqlite_vec::sqlite3_vec_init;

const N: usize = 100_000;
const DIMS: usize = 384;
const K: usize = 8;
const QUERIES: usize = 200;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn unit(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIMS).map(|_| self.next()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn team(i: usize) -> &'static str {
    if i % 100 == 0 {
        "t100"
    } else if i % 10 == 0 {
        "t10"
    } else {
        "all"
    }
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{label:<44} p50 {:>7.2} ms  p99 {:>7.2} ms",
        at(0.5),
        at(0.99)
    );
}

/// The exact scan of the Aegis store's index: f64 dot products in four lanes over every
/// row the filter keeps, then the top k.
fn exact(rows: &[(Vec<f32>, &'static str)], q: &[f32], keep: impl Fn(&str) -> bool) -> Vec<usize> {
    let mut hits: Vec<(f64, usize)> = rows
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| keep(t))
        .map(|(i, (v, _))| {
            let mut lanes = [0f64; 4];
            for (a, b) in q.chunks_exact(4).zip(v.chunks_exact(4)) {
                for (l, (x, y)) in lanes.iter_mut().zip(a.iter().zip(b)) {
                    *l += f64::from(*x) * f64::from(*y);
                }
            }
            (lanes.iter().sum::<f64>(), i)
        })
        .collect();
    let k = K.min(hits.len());
    hits.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
    hits.truncate(k);
    hits.into_iter().map(|(_, i)| i).collect()
}

fn main() {
    // SAFETY: registers sqlite-vec's entry point, which has the signature SQLite's
    // auto-extension mechanism expects, before any connection is opened.
    unsafe {
        #[allow(clippy::missing_transmute_annotations)]
        sqlite3_auto_extension(Some(std::mem::transmute(sqlite3_vec_init as *const ())));
    }
    let path = std::env::temp_dir().join(format!("sqlite-vec-bench-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let db = Connection::open(&path).unwrap();
    let version: String = db
        .query_row("SELECT vec_version()", [], |r| r.get(0))
        .unwrap();
    println!("sqlite-vec {version}, {N} vectors × {DIMS}, k = {K}, {QUERIES} queries per row");
    db.execute_batch(&format!(
        "CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIMS}] distance_metric=cosine, team text)"
    ))
    .unwrap();
    let mut rng = Rng(7);
    let rows: Vec<(Vec<f32>, &'static str)> = (0..N).map(|i| (rng.unit(), team(i))).collect();
    let t = Instant::now();
    {
        let tx = db.unchecked_transaction().unwrap();
        let mut ins = tx
            .prepare("INSERT INTO v (rowid, embedding, team) VALUES (?, ?, ?)")
            .unwrap();
        for (i, (v, t)) in rows.iter().enumerate() {
            ins.execute(rusqlite::params![i as i64, blob(v), t])
                .unwrap();
        }
        drop(ins);
        tx.commit().unwrap();
    }
    println!(
        "vec0 insert: {:.0} rows/s",
        N as f64 / t.elapsed().as_secs_f64()
    );

    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| rng.unit()).collect();
    for (label, filter) in [
        ("all rows", None),
        ("team = t10 (10 %)", Some("t10")),
        ("team = t100 (1 %)", Some("t100")),
    ] {
        let sql = match filter {
            None => format!("SELECT rowid FROM v WHERE embedding MATCH ? AND k = {K}"),
            Some(_) => {
                format!("SELECT rowid FROM v WHERE embedding MATCH ? AND k = {K} AND team = ?")
            }
        };
        let mut stmt = db.prepare(&sql).unwrap();
        let mut times = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let ids: Vec<i64> = match filter {
                None => stmt
                    .query_map([blob(q)], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                Some(f) => stmt
                    .query_map(rusqlite::params![blob(q), f], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
            };
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(ids.len(), K);
        }
        report(&format!("vec0 KNN, {label}"), times);

        let mut times = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let ids = exact(&rows, q, |t| filter.is_none_or(|f| t == f));
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(ids.len(), K);
        }
        report(&format!("in-memory exact scan, {label}"), times);
    }
    let _ = std::fs::remove_file(&path);
}
