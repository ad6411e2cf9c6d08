-- job: sales-rank
-- about: Best-selling products per category over a time window
-- input: sales sales
-- param: window_start TIMESTAMP = NULL
-- param: window_end TIMESTAMP = NULL
-- param: top BIGINT = NULL
-- output: sales_rank ORDER BY category_id, rank
--
-- sales-rank as SQL: the twin of jobs/sales_rank.rs, run by `--engine datafusion`.
-- It must give exactly the native engine's rows.
--
-- Table: sales (timestamp, product_id, category_id, quantity, total_price,
--   seller_id, buyer_id), read and checked by mrpipe's reader.
-- Parameters: $window_start, $window_end: the window, from inclusive, to exclusive (UTC timestamps);
--   $top: the ranks kept per category (BIGINT; NULL keeps all).

-- sales_rank
WITH sold AS (
    -- Step 1: units and revenue per (category, product). Quantities are summed as
    -- DECIMAL(38,0), so a total too large for BIGINT fails the run, as in the native
    -- engine, instead of wrapping around.
    SELECT category_id,
           product_id,
           SUM(CAST(quantity AS DECIMAL(38, 0))) AS total_sold,
           SUM(total_price) AS revenue
    FROM sales
    WHERE timestamp >= $window_start AND timestamp < $window_end
    GROUP BY category_id, product_id
),
ranked AS (
    -- Step 2: number the products of each category, best seller first, ties by
    -- product id (strings compare bytewise).
    SELECT category_id,
           ROW_NUMBER() OVER (PARTITION BY category_id ORDER BY total_sold DESC, product_id) AS rank,
           product_id,
           total_sold,
           revenue
    FROM sold
)
SELECT category_id, rank, product_id, total_sold, revenue
FROM ranked
WHERE $top IS NULL OR rank <= $top
ORDER BY category_id, rank;
