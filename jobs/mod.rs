//! The built-in jobs, one file each, named as the user types them
//! (`mrpipe run sales-rank` is `jobs/sales_rank.rs`). Adding a job means adding its
//! file and one line to [`ALL`].

pub mod hit_counts;
pub mod sales_rank;
pub mod spending;
pub mod url_dedup;

use crate::job::AnyJob;

/// Every built-in job, in the order `mrpipe jobs` lists them.
pub static ALL: &[&dyn AnyJob] =
    &[&sales_rank::SalesRank, &spending::Spending, &hit_counts::HitCounts, &url_dedup::UrlDedup];

/// The job named `name`, as typed on the command line.
pub fn find(name: &str) -> Option<&'static dyn AnyJob> {
    ALL.iter().copied().find(|j| j.info().name == name)
}
