-- job: hit-counts
-- about: Monthly hits per URL from access logs (TSV or nginx/Apache format)
-- input: access access
-- param: month TEXT = NULL
-- param: strip_query BOOLEAN
-- output: hit_counts ORDER BY month, hits DESC, url
--
-- hit-counts as SQL: the twin of jobs/hit_counts.rs, run by `--engine datafusion`.
-- It must give exactly the native engine's rows.
--
-- Table: access (timestamp, client_ip, method, url, status, bytes), read and checked
--   by mrpipe's reader from TSV or Common/Combined Log Format.
-- Parameters: $month: 'YYYY-MM' to count one month (NULL counts every month);
--   $strip_query: whether urls lose everything from their first '?'.

-- hit_counts
WITH requests AS (
    -- Through DATE: to_char on a timestamp converts it to nanoseconds, which only
    -- reach the years 1677-2262.
    SELECT to_char(CAST(timestamp AS DATE), '%Y-%m') AS month,
           CASE WHEN $strip_query THEN split_part(url, '?', 1) ELSE url END AS url
    FROM access
)
SELECT month, url, COUNT(*) AS hits
FROM requests
WHERE $month IS NULL OR month = $month
GROUP BY month, url
ORDER BY month, hits DESC, url;
