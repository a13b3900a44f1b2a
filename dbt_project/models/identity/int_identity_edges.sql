{#- Edges between identifiers seen together on one record, as integer keys: each identifier on a
    record is linked to the record's anchor (its first usable identifier in the order user_id,
    email, phone, anonymous_id), a star rather than every pair. Excluded identifiers link nobody. -#}
with occurrences as (
    select * from {{ ref('int_identifier_occurrences') }}
    where not is_blocklisted
),

usable as (
    select
        occurrences.record_id,
        identifiers.identifier_key,
        case occurrences.identifier_type
            when 'user_id' then 1 when 'email' then 2 when 'phone' then 3 else 4
        end as type_rank
    from occurrences
    join {{ ref('int_identifiers') }} as identifiers
        on identifiers.identifier_type = occurrences.identifier_type
        and identifiers.identifier_value = occurrences.identifier_value
    where not identifiers.is_excluded
),

anchored as (
    select
        record_id,
        identifier_key,
        first_value(identifier_key) over (
            partition by record_id order by type_rank, identifier_key
            rows between unbounded preceding and unbounded following
        ) as anchor_key
    from usable
),

final as (
    select distinct
        anchor_key as src,
        identifier_key as dst
    from anchored
    where identifier_key <> anchor_key
)

select * from final
