{#- The product each profile last viewed or carted (for personalisation when the trigger itself
    names no product). -#}
with product_events as (
    select profile_id, product_id, occurred_at, event_id
    from {{ ref('int_profile_events') }}
    where event_type in ('product_view', 'add_to_cart', 'checkout_started')
      and product_id is not null
),

final as (
    select profile_id, product_id, occurred_at as last_product_at
    from (
        select
            product_events.*,
            row_number() over (partition by profile_id order by occurred_at desc, event_id desc) as product_rank
        from product_events
    ) ranked
    where product_rank = 1
)

select * from final
