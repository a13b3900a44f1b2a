{#- Every raw row that was dropped or repaired, and why (contract §1). action is 'dropped' (the row
    is not used) or 'repaired' (the row is used without the named field).

    One branch per (table, problem): each reads its base model with a filter on one problem column
    (almost all null) that the warehouse applies inside the scan, so the keys of the rows without
    problems are not read (a CTE shared by the branches was materialised whole first). Raw order
    items have no base model: only the rows whose ids are null, empty or start with a space can be
    blank after trimming, so only those are trimmed. -#}
{%- set branches = [
    ('events', ref('base_events'), 'event_key', []),
    ('customers', ref('base_customers'), "coalesce(customer_id, 'row:unknown')", ["drop_reason <> 'superseded_customer_record'"]),
    ('orders', ref('base_orders'), "coalesce(order_id, 'row:unknown')", []),
] -%}
{%- set maybe_blank -%}
{%- for column in ('order_id', 'product_id') %}
        {% if not loop.first %}or {% endif %}{{ column }} is null or cast({{ column }} as {{ dbt.type_string() }}) = '' or cast({{ column }} as {{ dbt.type_string() }}) like ' %'
{%- endfor %}
{%- endset %}
with order_items as (
    select
        nullif(trim(cast(order_id as {{ dbt.type_string() }})), '') as order_id,
        nullif(trim(cast(product_id as {{ dbt.type_string() }})), '') as product_id
    from {{ source('raw', 'order_items') }}
    where {{ maybe_blank }}
),

problems as (
    {%- for table, relation, key, dropped_filter in branches %}
    select '{{ table }}' as source_table, {{ key }} as source_key, drop_reason as reason, 'dropped' as action
    from {{ relation }} where drop_reason is not null{% for f in dropped_filter %} and {{ f }}{% endfor %}
    union all
    select '{{ table }}', {{ key }}, email_issue, 'repaired'
    from {{ relation }} where email_issue is not null and drop_reason is null
    union all
    select '{{ table }}', {{ key }}, phone_issue, 'repaired'
    from {{ relation }} where phone_issue is not null and drop_reason is null
    union all
    {%- endfor %}
    select 'message_events', coalesce(message_id, 'row:unknown'), drop_reason, 'dropped'
    from {{ ref('base_message_events') }} where drop_reason is not null
    union all
    select 'order_items', coalesce(order_id, 'row:unknown'),
           case when order_id is null then 'missing_order_id' else 'missing_product_id' end, 'dropped'
    from order_items where order_id is null or product_id is null
),

final as (
    select
        source_table,
        source_key,
        reason,
        action,
        {{ lifeline.as_of() }} as detected_at
    from problems
)

select * from final
