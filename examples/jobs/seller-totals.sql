-- job: seller-totals
-- about: Card spending per seller and month, with how many users paid each
-- input: transactions transactions
-- param: min_users BIGINT = 1
-- output: seller_totals ORDER BY month, amount DESC, seller
-- output: month_totals ORDER BY month
-- Two outputs: the second statement reads the first one's result by its name.
SELECT to_char(CAST(timestamp AS DATE), '%Y-%m') AS month,
       trim(seller) AS seller,
       COUNT(DISTINCT user_id) AS users,
       SUM(amount) AS amount
FROM transactions
GROUP BY 1, 2
HAVING COUNT(DISTINCT user_id) >= $min_users;

SELECT month, COUNT(*) AS sellers, SUM(amount) AS amount
FROM seller_totals
GROUP BY month;
