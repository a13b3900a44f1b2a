with source as (
    select * from {{ source('raw', 'products') }}
),

typed as (
    select
        nullif(trim(cast(product_id as {{ dbt.type_string() }})), '') as product_id,
        nullif(trim(cast(name as {{ dbt.type_string() }})), '') as name,
        nullif(trim(cast(category as {{ dbt.type_string() }})), '') as category,
        {{ lifeline.parse_number('price') }} as price,
        cast({{ lifeline.parse_number('replenishment_days') }} as integer) as replenishment_days,
        nullif(trim(cast(url as {{ dbt.type_string() }})), '') as url,
        nullif(trim(cast(image_url as {{ dbt.type_string() }})), '') as image_url
    from source
),

ranked as (
    select typed.*, row_number() over (partition by product_id order by name) as product_rank
    from typed
    where product_id is not null
),

final as (
    select product_id, name, category, price, replenishment_days, url, image_url
    from ranked
    where product_rank = 1
)

select * from final
