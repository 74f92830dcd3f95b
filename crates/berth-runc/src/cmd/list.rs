//! `list` and `ps`.

use std::io::Write;

use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::Runtime;

pub fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&all)?),
        "table" => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &all {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    if s.owner.is_empty() {
                        "root".into()
                    } else {
                        s.owner.clone()
                    },
                ]);
            }
            print_table(&rows);
        }
        other => bail!("invalid format {other:?}: table or json"),
    }
    Ok(())
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}", w = widths[i] + 3));
            }
        }
        out.push('\n');
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
}

pub fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| anyhow!("ps output has no PID column"))?;
            println!("{header}");
            for l in lines {
                if let Some(p) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                    && pids.contains(&p)
                {
                    println!("{l}");
                }
            }
        }
        other => bail!("invalid format {other:?}: table or json"),
    }
    Ok(())
}
