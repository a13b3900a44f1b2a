with source as (
    select * from {{ source('raw', 'order_items') }}
),

typed as (
    select
        nullif(trim(cast(order_id as {{ dbt.type_string() }})), '') as order_id,
        nullif(trim(cast(product_id as {{ dbt.type_string() }})), '') as product_id,
        coalesce({{ lifeline.parse_number('quantity') }}, 1) as quantity,
        {{ lifeline.parse_number('unit_price') }} as unit_price
    from source
),

final as (
    select
        order_id,
        product_id,
        sum(quantity) as quantity,
        max(unit_price) as unit_price
    from typed
    where order_id is not null and product_id is not null
    group by order_id, product_id
)

select * from final
