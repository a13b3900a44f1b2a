{#- Each profile's timeline replayed into stage intervals (contract §2), reproducible for any
    var as_of. Stage changes happen at:
      - first seen: visitor (or prospect when already contactable); a profile known only from
        records without any timestamp (e.g. a customer row with no created_at) starts at as_of;
      - becoming contactable: prospect;
      - each completed order: new_customer (first), reactivated (the gap since the previous order
        was longer than lapsed_days), else repeat_customer;
      - at_risk_days / lapsed_days / churned_days after an order with no order since: at_risk,
        lapsed, churned (only once that moment has passed by as_of); a buyer is at_risk from the
        moment at_risk_days have fully passed (an order exactly at_risk_days before as_of is at_risk);
      - predicted (var at_risk_p_alive_below, null = off): a buyer whose BG/NBD probability of
        being alive (source predictions.profile_predictions) is below the threshold is at_risk from
        as_of, even before at_risk_days have passed. p_alive is a statement about now, so the
        interval starts at as_of; predictions made for a later as_of are ignored (no leakage when
        replaying history).
    When several changes share a timestamp the later stage in the list above wins.
    valid_to is the next interval's valid_from, null while current.

    Incremental (delete+insert on profile_id, macros/incremental_profiles.sql): a run replays only
    the profiles whose inputs changed since its last run (their int_profile_first_seen row and
    completed orders, and with the predicted rule on, their prediction rows), plus, when as_of
    moved, the profiles whose replay depends on where as_of lies: a profile first seen without a
    timestamp (it starts at as_of), a completed order whose at_risk/lapsed/churned moment falls
    between the old and the new as_of, and with the predicted rule on, a prediction for a buyer
    whose last order lies within at_risk_days of either as_of. A change of the model or of its
    vars replays every profile. changed_at is the start of the run that wrote the row (not a stage
    change: that is valid_from); a `dbt build`'s data tests read only those rows. A table from a
    release without it gains the column in its next run (old rows null). -#}
{%- set p_alive_below = var('at_risk_p_alive_below', none) %}
{%- set p_alive_rule = p_alive_below is not none and p_alive_below | string | trim not in ('', 'null', 'None') %}
{%- set scope_vars = ['at_risk_days', 'lapsed_days', 'churned_days', 'at_risk_p_alive_below'] %}
{{ config(
    materialized='incremental',
    unique_key='profile_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='append_new_columns',
    post_hook=["delete from {{ this }} where stage is null",
               "{{ lifeline.store_profile_scope(['at_risk_days', 'lapsed_days', 'churned_days', 'at_risk_p_alive_below']) }}"]
) }}
{%- set fingerprint_sql %}
    select profile_id, {{ lifeline.profile_row_hash(["'first_seen'", 'first_seen_at', 'contactable_at', 'is_contactable']) }} as row_hash
    from {{ ref('int_profile_first_seen') }}
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'purchase'", 'ordered_at', 'purchase_number']) }}
    from {{ ref('int_profile_orders') }}
    where is_purchase
{%- if p_alive_rule %}
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'prediction'", 'p_alive', 'as_of']) }}
    from {{ source('predictions', 'profile_predictions') }}
{%- endif %}
{%- endset %}
{%- set time_sql %}
    select profile_id from {{ ref('int_profile_first_seen') }} where first_seen_at is null
    union
    select profile_id from {{ ref('int_profile_orders') }}
    where is_purchase and (
        {%- for days in ['at_risk_days', 'lapsed_days', 'churned_days'] %}
        {% if not loop.first %}or {% endif %}({{ lifeline.add_days(var(days), 'ordered_at') }} >= {low} and {{ lifeline.add_days(var(days), 'ordered_at') }} <= {high})
        {%- endfor %}
    )
{%- if p_alive_rule %}
    union
    select orders.profile_id
    from {{ ref('int_profile_orders') }} as orders
    join {{ source('predictions', 'profile_predictions') }} as predictions on predictions.profile_id = orders.profile_id
    where orders.is_purchase
      and orders.ordered_at < {high}
      and {{ lifeline.add_days(var('at_risk_days'), 'orders.ordered_at') }} > {low}
{%- endif %}
{%- endset %}
{%- set scope = lifeline.profile_scope(fingerprint_sql, 'lifecycle_stage_history', scope_vars, time_sql) %}

with first_seen as (
    select * from {{ ref('int_profile_first_seen') }}
    {%- if scope %}
    where profile_id in (select profile_id from {{ scope }})
    {%- endif %}
),

purchases as (
    select
        profile_id,
        ordered_at,
        purchase_number,
        lag(ordered_at) over (partition by profile_id order by purchase_number) as previous_ordered_at,
        lead(ordered_at) over (partition by profile_id order by purchase_number) as next_ordered_at
    from {{ ref('int_profile_orders') }}
    where is_purchase
    {%- if scope %}
      and profile_id in (select profile_id from {{ scope }})
    {%- endif %}
),

first_purchase as (
    select profile_id, min(ordered_at) as first_ordered_at
    from purchases
    group by profile_id
),

arrival_points as (
    select
        first_seen.profile_id,
        coalesce(first_seen.first_seen_at, {{ lifeline.as_of() }}) as stage_changed_at,
        case when first_seen.contactable_at <= first_seen.first_seen_at
                  or (first_seen.first_seen_at is null and first_seen.is_contactable) then 'prospect'
             else 'visitor' end as stage,
        1 as stage_rank
    from first_seen
    union all
    select
        first_seen.profile_id,
        first_seen.contactable_at,
        'prospect',
        2
    from first_seen
    left join first_purchase on first_purchase.profile_id = first_seen.profile_id
    where first_seen.contactable_at is not null
      and first_seen.contactable_at > first_seen.first_seen_at
      and (first_purchase.first_ordered_at is null or first_seen.contactable_at < first_purchase.first_ordered_at)
),

order_points as (
    select
        profile_id,
        ordered_at as stage_changed_at,
        case
            when purchase_number = 1 then 'new_customer'
            when ordered_at > {{ lifeline.add_days(var('lapsed_days'), 'previous_ordered_at') }} then 'reactivated'
            else 'repeat_customer'
        end as stage,
        3 as stage_rank
    from purchases
),

decay_thresholds as (
    select 'at_risk' as stage, {{ var('at_risk_days') }} as after_days, 4 as stage_rank
    union all select 'lapsed', {{ var('lapsed_days') }}, 5
    union all select 'churned', {{ var('churned_days') }}, 6
),

decay_points as (
    select
        purchases.profile_id,
        {{ lifeline.add_days('decay_thresholds.after_days', 'purchases.ordered_at') }} as stage_changed_at,
        decay_thresholds.stage,
        decay_thresholds.stage_rank
    from purchases
    cross join decay_thresholds
    where {{ lifeline.add_days('decay_thresholds.after_days', 'purchases.ordered_at') }} <= {{ lifeline.as_of() }}
      and (purchases.next_ordered_at is null
           or {{ lifeline.add_days('decay_thresholds.after_days', 'purchases.ordered_at') }} < purchases.next_ordered_at)
),

{%- if p_alive_rule %}
predicted_points as (
    select
        purchases.profile_id,
        {{ lifeline.as_of() }} as stage_changed_at,
        'at_risk' as stage,
        4 as stage_rank
    from purchases
    join {{ source('predictions', 'profile_predictions') }} as predictions
        on predictions.profile_id = purchases.profile_id
    where purchases.next_ordered_at is null
      and purchases.ordered_at < {{ lifeline.as_of() }}
      and {{ lifeline.add_days(var('at_risk_days'), 'purchases.ordered_at') }} > {{ lifeline.as_of() }}
      and predictions.p_alive < {{ p_alive_below | float }}
      and (predictions.as_of is null or predictions.as_of <= {{ lifeline.as_of() }})
),
{%- endif %}

points as (
    select * from arrival_points
    union all
    select * from order_points
    union all
    select * from decay_points
{%- if p_alive_rule %}
    union all
    select * from predicted_points
{%- endif %}
),

one_per_moment as (
    select profile_id, stage_changed_at, stage
    from (
        select points.*, row_number() over (partition by profile_id, stage_changed_at order by stage_rank desc) as moment_rank
        from points
        where stage_changed_at is not null
    ) ranked
    where moment_rank = 1
),

with_previous as (
    select
        one_per_moment.*,
        lag(stage) over (partition by profile_id order by stage_changed_at) as previous_stage
    from one_per_moment
),

changes as (
    select profile_id, stage_changed_at, stage
    from with_previous
    where previous_stage is null or previous_stage <> stage
),

intervals as (
    select
        profile_id,
        stage,
        stage_changed_at as valid_from,
        lead(stage_changed_at) over (partition by profile_id order by stage_changed_at) as valid_to,
        {{ lifeline.run_stamp() }} as changed_at
    from changes
),

final as (
    select * from intervals
{%- if scope %}
    {#- A scoped profile without intervals any more (merged away, erased): a tombstone (stage
        null) that replaces its stored rows and is deleted by the post-hook. #}
    union all
    select scoped.profile_id, cast(null as {{ dbt.type_string() }}), cast(null as {{ dbt.type_timestamp() }}),
           cast(null as {{ dbt.type_timestamp() }}), {{ lifeline.run_stamp() }}
    from {{ scope }} as scoped
    where scoped.profile_id not in (select profile_id from intervals)
{%- endif %}
)

select * from final
