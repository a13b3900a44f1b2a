with checked as (
    select * from {{ ref('base_orders') }}
),

final as (
    select
        order_id,
        ordered_at,
        customer_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        anonymous_id,
        status,
        is_purchase,
        total,
        currency
    from checked
    where drop_reason is null
      and ordered_at <= {{ lifeline.as_of() }}
)

select * from final
