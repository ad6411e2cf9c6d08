-- job: spending
-- about: Monthly spending per user and category, with budget alerts
-- input: transactions transactions
-- param: month TEXT = NULL
-- output: monthly_spending ORDER BY user_id, month, category
-- output: budget_alerts ORDER BY user_id, month, category
--
-- spending as SQL: the twin of jobs/spending.rs, run by `--engine datafusion`.
-- It must give exactly the native engine's rows.
--
-- Tables: transactions (user_id, timestamp, seller, amount), read and checked by
--   mrpipe's reader; the side files, as read (rows with a wrong field count or a bad
--   amount were skipped with a warning):
--   sellers (seller, category): the seed map;
--   crowd_overrides (user_id, seller, category): one vote per row;
--   incomes (line, user_id, monthly_income);
--   budget_overrides (line, user_id, category, amount);
--   budget_shares (category, share): the default budget as a share of income.
-- Parameters: $month: 'YYYY-MM' to keep one month (NULL keeps every month).

-- monthly_spending
WITH seed AS (
    -- Sellers match after trimming spaces; one listed twice takes the bytewise
    -- smallest category.
    SELECT btrim(seller, ' ') AS seller, MIN(btrim(category, ' ')) AS category
    FROM sellers
    GROUP BY btrim(seller, ' ')
),
votes AS (
    -- Votes count distinct users.
    SELECT btrim(seller, ' ') AS seller, btrim(category, ' ') AS category, COUNT(DISTINCT user_id) AS voters
    FROM crowd_overrides
    GROUP BY btrim(seller, ' '), btrim(category, ' ')
),
crowd AS (
    -- The category most users chose; ties go to the bytewise smallest.
    SELECT seller, category
    FROM (
        SELECT seller, category, ROW_NUMBER() OVER (PARTITION BY seller ORDER BY voters DESC, category) AS place
        FROM votes
    )
    WHERE place = 1
),
categorized AS (
    -- The seed map first, then the crowd, else 'uncategorized'.
    SELECT t.user_id,
           -- Through DATE: to_char on a timestamp converts it to nanoseconds, which
           -- only reach the years 1677-2262.
           to_char(CAST(t.timestamp AS DATE), '%Y-%m') AS month,
           COALESCE(seed.category, crowd.category, 'uncategorized') AS category,
           t.amount
    FROM transactions t
    LEFT JOIN seed ON seed.seller = btrim(t.seller, ' ')
    LEFT JOIN crowd ON crowd.seller = btrim(t.seller, ' ')
)
SELECT user_id, month, category, SUM(amount) AS amount
FROM categorized
WHERE $month IS NULL OR month = $month
GROUP BY user_id, month, category
ORDER BY user_id, month, category;

-- budget_alerts (only with incomes or budget overrides), from the monthly_spending
-- rows above.
WITH income AS (
    -- A user listed twice: the last row wins.
    SELECT user_id, monthly_income
    FROM (
        SELECT user_id, monthly_income, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY line DESC) AS newest
        FROM incomes
    )
    WHERE newest = 1
),
override AS (
    SELECT user_id, category, amount
    FROM (
        SELECT user_id,
               btrim(category, ' ') AS category,
               amount,
               ROW_NUMBER() OVER (PARTITION BY user_id, btrim(category, ' ') ORDER BY line DESC) AS newest
        FROM budget_overrides
    )
    WHERE newest = 1
),
budgeted AS (
    -- An override replaces the default budget, income x share. The cast to cents
    -- rounds half away from zero (arrow's rule when a cast drops decimal places).
    SELECT s.user_id,
           s.month,
           s.category,
           s.amount,
           COALESCE(o.amount, CAST(i.monthly_income * sh.share AS DECIMAL(18, 2))) AS budget
    FROM monthly_spending s
    LEFT JOIN override o ON o.user_id = s.user_id AND o.category = s.category
    LEFT JOIN income i ON i.user_id = s.user_id
    LEFT JOIN budget_shares sh ON sh.category = s.category
)
SELECT user_id,
       month,
       category,
       amount,
       budget,
       CASE WHEN amount >= budget THEN 'exceeded' ELSE 'near' END AS status
FROM budgeted
WHERE budget IS NOT NULL AND (amount >= budget OR amount * 100 >= budget * 80)
ORDER BY user_id, month, category;
