{#- The audiences as they are synced: one row per (audience, channel, profile_id).
    Rules, in order: a profile needs consent and the contact field for the channel; sunset
    members get no other email audience; among the audiences a person qualifies for, the one with
    the highest priority (audience_settings) wins per channel; a deterministic holdout of
    var holdout_percent per audience (by a hash of profile_id and audience) is marked is_holdout
    and never synced, so lift can be measured. step counts earlier sends of this audience to the
    person in the last 30 days; a discount is offered only from step 3, after softer steps. -#}
with candidates as (
    select * from {{ ref('aud_welcome') }}
    union all select * from {{ ref('aud_browse_abandonment') }}
    union all select * from {{ ref('aud_cart_abandonment') }}
    union all select * from {{ ref('aud_post_purchase_replenishment') }}
    union all select * from {{ ref('aud_win_back') }}
    union all select * from {{ ref('aud_sunset') }}
),

settings as (
    select * from {{ ref('audience_settings') }}
),

profiles as (
    select * from {{ ref('profiles') }}
),

sunset as (
    select profile_id from {{ ref('aud_sunset') }}
),

eligible as (
    select
        candidates.*,
        settings.channel,
        settings.priority
    from candidates
    join settings on settings.audience = candidates.audience
    join profiles on profiles.profile_id = candidates.profile_id
    left join sunset on sunset.profile_id = candidates.profile_id
    where (settings.channel = 'email' and profiles.email_consent and profiles.email is not null
           and (candidates.audience = 'sunset' or sunset.profile_id is null))
       or (settings.channel = 'sms' and profiles.sms_consent and profiles.phone is not null)
),

prioritised as (
    select eligible.*
    from (
        select
            eligible.*,
            row_number() over (partition by profile_id, channel order by priority, audience) as priority_rank
        from eligible
    ) eligible
    where priority_rank = 1
),

earlier_sends as (
    select profile_id, campaign as audience, channel, count(*) as sends
    from {{ ref('int_profile_message_events') }}
    where event = 'sent'
      and occurred_at > {{ lifeline.add_days(-30, lifeline.as_of()) }}
    group by profile_id, campaign, channel
),

enriched as (
    select
        prioritised.audience,
        prioritised.profile_id,
        prioritised.channel,
        prioritised.entered_at,
        prioritised.priority,
        prioritised.angle,
        coalesce(earlier_sends.sends, 0) + 1 as step,
        profiles.email,
        profiles.phone,
        profiles.first_name,
        profiles.last_name,
        profiles.lifecycle_stage,
        profiles.best_send_hour,
        products.product_id,
        products.name as product_name,
        products.url as product_url,
        products.image_url as product_image_url,
        {{ lifeline.hash_bucket("prioritised.profile_id || ':' || prioritised.audience", 100) }} < {{ var('holdout_percent') }} as is_holdout
    from prioritised
    join profiles on profiles.profile_id = prioritised.profile_id
    left join earlier_sends
        on earlier_sends.profile_id = prioritised.profile_id
        and earlier_sends.audience = prioritised.audience
        and earlier_sends.channel = prioritised.channel
    left join {{ ref('stg_products') }} as products on products.product_id = prioritised.product_id
),

final as (
    select
        audience,
        profile_id,
        channel,
        entered_at,
        email,
        phone,
        is_holdout,
        {{ lifeline.json_object_text([
            "'first_name'", "first_name",
            "'stage'", "lifecycle_stage",
            "'step'", "step",
            "'angle'", "angle",
            "'offer'", "case when step >= 3 then 'discount_10' else 'none' end",
            "'best_send_hour'", "best_send_hour",
            "'product_id'", "product_id",
            "'product_name'", "product_name",
            "'product_url'", "product_url",
            "'product_image_url'", "product_image_url"
        ]) }} as payload,
        first_name,
        last_name,
        step,
        priority
    from enriched
)

select * from final
