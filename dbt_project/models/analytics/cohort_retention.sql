{#- Cohort retention by first-order month: for each cohort (month of the first completed order)
    and month offset (0 = the first month), how many of the cohort's customers placed a completed
    order in that month, and that share of the cohort. -#}
with purchases as (
    select profile_id, ordered_at
    from {{ ref('int_profile_orders') }}
    where is_purchase
),

first_orders as (
    select profile_id, {{ dbt.date_trunc('month', 'min(ordered_at)') }} as cohort_month
    from purchases
    group by profile_id
),

cohort_sizes as (
    select cohort_month, count(*) as cohort_customers
    from first_orders
    group by cohort_month
),

activity as (
    select distinct
        first_orders.cohort_month,
        purchases.profile_id,
        {{ dbt.datediff('first_orders.cohort_month', dbt.date_trunc('month', 'purchases.ordered_at'), 'month') }} as months_since_first
    from purchases
    join first_orders on first_orders.profile_id = purchases.profile_id
),

final as (
    select
        cast(activity.cohort_month as date) as cohort_month,
        activity.months_since_first,
        cohort_sizes.cohort_customers,
        count(*) as active_customers,
        cast(count(*) as double precision) / cohort_sizes.cohort_customers as retention_rate
    from activity
    join cohort_sizes on cohort_sizes.cohort_month = activity.cohort_month
    group by activity.cohort_month, activity.months_since_first, cohort_sizes.cohort_customers
)

select * from final
