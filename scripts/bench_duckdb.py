"""DuckDB peer for scripts/bench: the same job as SQL over the same file, to Parquet.

Usage: bench_duckdb.py JOB INPUT THREADS OUTPUT SELLERS
Prints "WALL_SECONDS PEAK_RSS_MIB": the query's wall time (after Python and the module
loaded) and the peak RSS of this whole process.
"""
import resource
import sys
import time

import duckdb

job, path, threads, out, sellers = sys.argv[1:6]

TS = "CASE WHEN regexp_full_match(ts, '[0-9]+') THEN to_timestamp(ts::BIGINT) ELSE ts::TIMESTAMPTZ END"


def src(columns):
    cols = ", ".join(f"'{name}': '{ty}'" for name, ty in columns)
    return f"read_csv('{path}', delim='\\t', header=true, quote='', escape='', ignore_errors=true, columns={{{cols}}})"


QUERIES = {
    "sales-rank": f"""
        WITH s AS (
          SELECT category_id, product_id, sum(quantity) AS total_sold, sum(total_price) AS revenue
          FROM {src([('ts','VARCHAR'),('product_id','VARCHAR'),('category_id','VARCHAR'),('quantity','BIGINT'),
                     ('total_price','DECIMAL(18,2)'),('seller_id','VARCHAR'),('buyer_id','VARCHAR')])}
          WHERE {TS} >= TIMESTAMPTZ '2026-11-16 00:00:00+00' AND {TS} < TIMESTAMPTZ '2026-11-23 00:00:00+00'
          GROUP BY ALL)
        SELECT category_id, row_number() OVER (PARTITION BY category_id ORDER BY total_sold DESC, product_id) AS rank,
               product_id, total_sold, revenue FROM s ORDER BY category_id, rank""",
    "spending": f"""
        SELECT t.user_id, strftime({TS.replace('ts', 't.ts')}, '%Y-%m') AS month,
               coalesce(s.category, 'uncategorized') AS category, sum(t.amount) AS amount
        FROM {src([('user_id','VARCHAR'),('ts','VARCHAR'),('seller','VARCHAR'),('amount','DECIMAL(18,2)')])} t
        LEFT JOIN read_csv('{sellers}', delim='\\t', header=true) s ON trim(t.seller) = s.seller
        GROUP BY ALL ORDER BY 1, 2, 3""",
    "hit-counts": f"""
        SELECT strftime({TS}, '%Y-%m') AS month, url, count(*) AS hits
        FROM {src([('ts','VARCHAR'),('client_ip','VARCHAR'),('method','VARCHAR'),('url','VARCHAR'),('status','BIGINT'),('bytes','BIGINT')])}
        GROUP BY ALL ORDER BY month, hits DESC, url""",
    "url-dedup": f"""
        SELECT trim(url) AS url, count(*) AS occurrences FROM {src([('url','VARCHAR')])}
        GROUP BY ALL ORDER BY url""",
}

if job not in QUERIES:
    sys.exit(f"no DuckDB peer query for {job}")
con = duckdb.connect()
con.execute(f"SET threads={threads}; SET TimeZone='UTC'; SET preserve_insertion_order=false")
start = time.perf_counter()
con.execute(f"COPY ({QUERIES[job]}) TO '{out}' (FORMAT parquet)")
wall = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"{wall:.2f} {rss}")
