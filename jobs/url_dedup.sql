-- job: url-dedup
-- about: Distinct or exactly-once URLs of a crawl list, larger than memory
-- input: links_to_crawl urls
-- param: normalize BOOLEAN
-- param: mode TEXT = distinct
-- output: urls ORDER BY url
--
-- url-dedup as SQL: the twin of jobs/url_dedup.rs, run by `--engine datafusion`.
-- It must give exactly the native engine's rows.
--
-- Table: links_to_crawl (url), one trimmed URL per line, read by mrpipe's reader.
-- Function: normalize_url(url), the native engine's --normalize rule.
-- Parameters: $normalize: whether urls are normalized first;
--   $mode: 'distinct' keeps every url once, 'singletons' those seen exactly once.

-- urls
WITH seen AS (
    SELECT CASE WHEN $normalize THEN normalize_url(url) ELSE url END AS url
    FROM links_to_crawl
)
SELECT url, COUNT(*) AS occurrences
FROM seen
GROUP BY url
HAVING $mode = 'distinct' OR COUNT(*) = 1
ORDER BY url;
