{#- No open or click after var sunset_after_sends emails: one last message, and left out of every
    other email audience (audience_settings gives sunset the top email priority). -#}
with profiles as (
    select * from {{ ref('profiles') }}
),

final as (
    select
        profile_id,
        'sunset' as audience,
        last_sent_at as entered_at,
        cast(null as {{ dbt.type_string() }}) as product_id,
        'stay_subscribed' as angle
    from profiles
    where sends_since_last_engagement >= {{ var('sunset_after_sends') }}
)

select * from final
