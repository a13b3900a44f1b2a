{#- Every usable identifier once, with when it was first and last seen, how many people-level ids
    (emails, user_ids) it was seen with, and whether that is too many to trust it for stitching.
    identifier_key is a stable 60-bit integer from the md5 of type:value (macro stable_key), the
    same on every run and warehouse, so the incremental graph state stays valid across runs. -#}
{%- set limits = var('identity_link_limits') -%}
with occurrences as (
    select * from {{ ref('int_identifier_occurrences') }}
    where not is_blocklisted
),

seen as (
    select
        identifier_type,
        identifier_value,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at
    from occurrences
    group by identifier_type, identifier_value
),

co_occurring as (
    select
        subject.identifier_type,
        subject.identifier_value,
        count(distinct case when other.identifier_type = 'email' and subject.identifier_type <> 'email'
                            then other.identifier_value end) as linked_emails,
        count(distinct case when other.identifier_type = 'user_id' and subject.identifier_type <> 'user_id'
                            then other.identifier_value end) as linked_user_ids
    from occurrences as subject
    join occurrences as other on other.record_id = subject.record_id
    group by subject.identifier_type, subject.identifier_value
),

limits as (
    {%- for identifier_type, limit in limits.items() %}
    select '{{ identifier_type }}' as identifier_type, {{ limit }} as link_limit
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

final as (
    select
        {{ lifeline.stable_key("seen.identifier_type || ':' || seen.identifier_value") }} as identifier_key,
        seen.identifier_type,
        seen.identifier_value,
        seen.first_seen_at,
        seen.last_seen_at,
        greatest(co_occurring.linked_emails, co_occurring.linked_user_ids) as linked_count,
        limits.link_limit,
        greatest(co_occurring.linked_emails, co_occurring.linked_user_ids) > limits.link_limit as is_excluded,
        case when co_occurring.linked_emails >= co_occurring.linked_user_ids then 'email' else 'user_id' end as linked_type
    from seen
    join co_occurring
        on co_occurring.identifier_type = seen.identifier_type
        and co_occurring.identifier_value = seen.identifier_value
    join limits on limits.identifier_type = seen.identifier_type
)

select * from final
