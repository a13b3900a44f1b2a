with source as (
    select * from {{ source('raw', 'orders') }}
),

default_country as (
    select calling_code from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("default_country") }}'
),

{#- Phones are read with the country of the customer the row belongs to, where known. -#}
customer_calling_codes as (
    select customers.customer_id, calling_codes.calling_code
    from {{ ref('base_customers') }} as customers
    join {{ ref('country_calling_codes') }} as calling_codes
        on calling_codes.country_code = customers.country_code
    where customers.drop_reason is null and customers.customer_id is not null
),

typed as (
    select
        {{ lifeline.clean_text('source.order_id') }} as order_id,
        {{ lifeline.parse_timestamp('source.ordered_at') }} as ordered_at,
        {{ lifeline.clean_text('source.customer_id') }} as customer_id,
        {{ lifeline.clean_text('source.email') }} as email_raw,
        {{ lifeline.clean_text('source.phone') }} as phone_raw,
        {{ lifeline.clean_text('source.anonymous_id') }} as anonymous_id,
        coalesce(lower(nullif(trim(cast(source.status as {{ dbt.type_string() }})), '')), 'completed') as status,
        {{ lifeline.parse_number('source.total') }} as total,
        upper(nullif(trim(cast(source.currency as {{ dbt.type_string() }})), '')) as currency,
        coalesce(customer_calling_codes.calling_code, default_country.calling_code) as default_calling_code
    from source
    cross join default_country
    left join customer_calling_codes
        on customer_calling_codes.customer_id = {{ lifeline.clean_text('source.customer_id') }}
),

normalised as (
    select
        typed.*,
        {{ lifeline.normalize_email('email_raw') }} as email,
        {{ lifeline.normalize_phone('phone_raw', 'default_calling_code') }} as phone
    from typed
),

ranked as (
    select
        normalised.*,
        row_number() over (partition by order_id order by ordered_at nulls last, total desc nulls last) as order_rank
    from normalised
),

final as (
    select
        order_id,
        ordered_at,
        customer_id,
        email,
        phone,
        anonymous_id,
        status,
        status = 'completed' as is_purchase,
        total,
        currency,
        case
            when order_id is null then 'missing_order_id'
            when ordered_at is null then 'unparseable_timestamp'
            when order_rank > 1 then 'duplicate_order_id'
        end as drop_reason,
        case when email_raw is not null and email is null then 'malformed_email' end as email_issue,
        case when phone_raw is not null and phone is null then 'malformed_phone' end as phone_issue
    from ranked
)

select * from final
