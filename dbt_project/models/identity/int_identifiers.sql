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

{#- Distinct (identifier, linked email or user_id of another type) pairs first, then counted:
    a plain count(distinct) over every co-occurring pair was the model's main cost. -#}
linked as (
    select distinct
        subject.identifier_type,
        subject.identifier_value,
        other.identifier_type as linked_type,
        other.identifier_value as linked_value
    from occurrences as subject
    join occurrences as other on other.record_id = subject.record_id
    where other.identifier_type in ('email', 'user_id')
      and other.identifier_type <> subject.identifier_type
),

co_occurring as (
    select
        identifier_type,
        identifier_value,
        count(case when linked_type = 'email' then 1 end) as linked_emails,
        count(case when linked_type = 'user_id' then 1 end) as linked_user_ids
    from linked
    group by identifier_type, identifier_value
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
        greatest(coalesce(co_occurring.linked_emails, 0), coalesce(co_occurring.linked_user_ids, 0)) as linked_count,
        limits.link_limit,
        greatest(coalesce(co_occurring.linked_emails, 0), coalesce(co_occurring.linked_user_ids, 0)) > limits.link_limit as is_excluded,
        case when coalesce(co_occurring.linked_emails, 0) >= coalesce(co_occurring.linked_user_ids, 0) then 'email' else 'user_id' end as linked_type
    from seen
    left join co_occurring
        on co_occurring.identifier_type = seen.identifier_type
        and co_occurring.identifier_value = seen.identifier_value
    join limits on limits.identifier_type = seen.identifier_type
)

select * from final
