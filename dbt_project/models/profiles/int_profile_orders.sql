{#- Orders (all statuses) with the profile that placed them and their sequence among the
    profile's completed orders.

    Incremental (macros/incremental_orders.sql, affected_order_profiles): a profile's rows depend
    only on the orders attributed to it, so a run recomputes every order of the profiles touched
    since its last run (attributed_at): the stored and the current profile of each stg_orders row
    staged since (new, corrected, re-read) and of each order whose record changed profile
    (int_record_profiles.changed_at: merges, splits). delete+insert on order_id; the post-hook
    removes the stored rows of those profiles the run did not rewrite (their order lost its
    profile) and the orders after as_of (as_of moved back: the purchase numbers before it stay).
    When stg_orders rewrote every row since (its fallback or a refresh, the only other way an
    order leaves it), every profile is recomputed. attributed_at is the start of the run that
    wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook=["{{ lifeline.drop_unwritten_order_profiles('int_profile_orders_affected') }}",
               "delete from {{ this }} where ordered_at > {{ lifeline.as_of() }}"]
) }}
{%- set affected = lifeline.affected_order_profiles(ref('stg_orders'), ref('int_record_profiles'),
                                                    'int_profile_orders_affected', 'int_profile_orders') %}
with orders as (
    select * from {{ ref('stg_orders') }}
),

record_profiles as (
    select * from {{ ref('int_record_profiles') }}
    where source_table = 'orders'
      and profile_id is not null
      {%- if affected is not none %}
      and profile_id in (select profile_id from {{ affected }})
      {%- endif %}
),

attributed as (
    select
        record_profiles.profile_id,
        orders.order_id,
        orders.ordered_at,
        orders.status,
        orders.is_purchase,
        orders.total,
        orders.currency
    from orders
    {{ lifeline.join_record_profiles('orders.anonymous_id', 'orders.customer_id', 'orders.email', 'orders.phone') }}
),

final as (
    select
        attributed.*,
        case when is_purchase then
            row_number() over (partition by profile_id, is_purchase order by ordered_at, order_id)
        end as purchase_number,
        {#- When this row was (re)written: the run's start. #}
        {{ lifeline.run_stamp() }} as attributed_at
    from attributed
)

select * from final
