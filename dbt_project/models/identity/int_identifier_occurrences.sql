{#- One row per identifier on a record (the records unpivoted), junk values flagged. -#}
with records as (
    select * from {{ ref('int_identity_records') }}
),

unpivoted as (
    select record_id, 'user_id' as identifier_type, user_id as identifier_value, first_seen_at, last_seen_at from records where user_id is not null
    union all
    select record_id, 'email', email, first_seen_at, last_seen_at from records where email is not null
    union all
    select record_id, 'phone', phone, first_seen_at, last_seen_at from records where phone is not null
    union all
    select record_id, 'anonymous_id', anonymous_id, first_seen_at, last_seen_at from records where anonymous_id is not null
),

blocklist as (
    select identifier_type, lower(identifier_value) as identifier_value, reason
    from {{ ref('identifier_blocklist') }}
),

final as (
    select
        unpivoted.*,
        blocklist.identifier_value is not null as is_blocklisted,
        blocklist.reason as blocklist_reason
    from unpivoted
    left join blocklist
        on blocklist.identifier_type = unpivoted.identifier_type
        and blocklist.identifier_value = lower(unpivoted.identifier_value)
)

select * from final
