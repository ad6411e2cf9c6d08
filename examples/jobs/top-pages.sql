-- job: top-pages
-- about: The most requested pages of each month, from nginx/Apache access logs
-- input: access clf
-- param: top BIGINT = 10
-- param: strip_query BOOLEAN
-- output: top_pages ORDER BY month, hits DESC, url
-- A SQL job (shared/spec/sql-jobs.md): mrpipe reads and checks the logs, binds
-- $top and $strip_query, sorts the rows in the declared order and publishes them.
-- Its outputs have a `month` column, so it also takes --month, --from/--to.
WITH hits AS (
  SELECT to_char(CAST(timestamp AS DATE), '%Y-%m') AS month,
         CASE WHEN $strip_query THEN split_part(url, '?', 1) ELSE url END AS url,
         COUNT(*) AS hits
  FROM access
  GROUP BY 1, 2
)
SELECT month, url, hits
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY month ORDER BY hits DESC, url) AS r FROM hits)
WHERE r <= $top;
