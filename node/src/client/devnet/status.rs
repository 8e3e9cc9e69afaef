//! `lode devnet status`: the node table from `devnet.json`, each node asked for its state
//! (an unreachable node is shown as down).

use std::path::Path;

use futures::future::join_all;

use super::error::DevnetError;
use super::lock;
use super::output;
use super::probe;

/// Prints the devnet's table and one status line.
pub async fn status(dir: &Path) -> Result<(), DevnetError> {
    let file = super::file::read(dir)?;
    let supervisor = lock::holder(dir)?;
    let probes = join_all(file.nodes.iter().map(probe::full)).await;
    let rows: Vec<_> = file.nodes.iter().cloned().zip(probes).collect();
    output::table(&rows);
    output::line(&output::status_text(&rows));
    #[cfg(target_os = "linux")]
    for l in super::wan::link_lines(&file, &rows.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>()) {
        output::line(&l);
    }
    output::line(&match supervisor {
        Some(pid) => format!("supervisor: running (pid {pid})"),
        None => format!(
            "supervisor: not running (start with `lode devnet up --dir {}`)",
            dir.display()
        ),
    });
    Ok(())
}
