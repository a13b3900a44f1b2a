{#- Identifiers kept out of stitching, and why: shared ones (a kiosk tablet, a family inbox) that
    link more people-level ids than var identity_link_limits allows for their type, and junk
    values from the identifier_blocklist seed. -#}
with shared as (
    select
        identifier_type,
        identifier_value,
        'linked to ' || cast(linked_count as {{ dbt.type_string() }}) || ' distinct ' || linked_type
            || 's (limit ' || cast(link_limit as {{ dbt.type_string() }}) || ')' as reason,
        linked_count
    from {{ ref('int_identifiers') }}
    where is_excluded
),

blocklisted as (
    select
        identifier_type,
        identifier_value,
        'blocklisted value (' || max(blocklist_reason) || ')' as reason,
        count(distinct record_id) as linked_count
    from {{ ref('int_identifier_occurrences') }}
    where is_blocklisted
    group by identifier_type, identifier_value
),

final as (
    select * from shared
    union all
    select * from blocklisted
)

select * from final
