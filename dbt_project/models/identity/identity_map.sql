{#- One row per usable, normalised identifier and the profile it belongs to.

    profile_id is deterministic: it is derived from the component's anchor, the identifier seen
    first (ties: user_id, email, phone, anonymous_id, then value), salted with var profile_id_salt.
    Unrelated new data leaves existing components, so their anchors and ids, unchanged; when two
    profiles merge, the older anchor (so the older id) survives. -#}
with identifiers as (
    select * from {{ ref('int_identifiers') }}
    where not is_excluded
),

components as (
    select * from {{ ref('int_identity_components') }}
),

assigned as (
    select
        identifiers.*,
        coalesce(components.component_key, identifiers.identifier_key) as component_key,
        case identifiers.identifier_type
            when 'user_id' then 1 when 'email' then 2 when 'phone' then 3 else 4
        end as type_rank
    from identifiers
    left join components on components.identifier_key = identifiers.identifier_key
),

anchors as (
    select
        component_key,
        identifier_type as anchor_type,
        identifier_value as anchor_value
    from (
        select
            assigned.*,
            row_number() over (
                partition by component_key
                order by first_seen_at, type_rank, identifier_value
            ) as anchor_rank
        from assigned
    ) ranked
    where anchor_rank = 1
),

final as (
    select
        assigned.identifier_type,
        assigned.identifier_value,
        'p_' || substr(md5('{{ var("profile_id_salt") }}' || ':' || anchors.anchor_type || ':' || anchors.anchor_value), 1, 20) as profile_id,
        assigned.first_seen_at,
        assigned.last_seen_at
    from assigned
    join anchors on anchors.component_key = assigned.component_key
)

select * from final
