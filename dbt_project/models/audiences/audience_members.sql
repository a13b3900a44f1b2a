{#- The audiences as they are synced: one row per (audience, channel, profile_id).
    Rules, in order:
      1. consent: a profile needs consent and the contact field for the channel. Channel `ads`
         (ad syncs: Meta, Google, TikTok; every audience has it, at the audience's best priority):
         an identifier the ad platform matches (email, phone) with marketing consent on that
         identifier's own channel, and the latest ads signal (int_consent_signals) not an opt-out:
         an ad-targeting opt-out holds until an explicit ads subscribe, a new email or sms consent
         does not undo it. An ads row carries only the consented identifiers (email and/or phone);
      2. sunset members get no other email audience, nor any other ads audience;
      3. priority: among the audiences a person qualifies for, the one with the highest priority
         (audience_settings, 1 = highest) wins per channel (one message per channel per run/day);
      4. frequency caps: a person who was already sent var frequency_caps[channel].max_messages
         messages on that channel (any campaign) in the last frequency_caps[channel].days days is
         left out for that channel;
      5. holdout: a deterministic var holdout_percent per audience (a hash of profile_id and
         audience, identical on every warehouse and run) is marked is_holdout and never synced.
    step, angle, format and offer come from int_audience_steps (behaviour over clocks); the
    product shown is the trigger's own, else the person's last viewed or carted product. -#}
{%- set caps = var('frequency_caps') %}
with candidates as (
    select * from {{ ref('int_audience_steps') }}
),

settings as (
    select audience, channel, priority from {{ ref('audience_settings') }}
    union all
    select audience, 'ads', min(priority) from {{ ref('audience_settings') }} group by audience
),

profiles as (
    select * from {{ ref('profiles') }}
),

sunset as (
    select profile_id from {{ ref('aud_sunset') }}
),

ads_opted_out as (
    select profile_id
    from (
        select
            profile_id,
            status,
            row_number() over (
                partition by profile_id
                order by signaled_at desc nulls last, case status when 'unsubscribed' then 0 else 1 end
            ) as signal_rank
        from {{ ref('int_consent_signals') }}
        where channel = 'ads'
    ) ranked
    where signal_rank = 1 and status = 'unsubscribed'
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
    left join ads_opted_out on ads_opted_out.profile_id = candidates.profile_id
    where (settings.channel = 'email' and profiles.email_consent and profiles.email is not null
           and (candidates.audience = 'sunset' or sunset.profile_id is null))
       or (settings.channel = 'sms' and profiles.sms_consent and profiles.phone is not null)
       or (settings.channel = 'ads' and ads_opted_out.profile_id is null
           and ((profiles.email_consent and profiles.email is not null)
                or (profiles.sms_consent and profiles.phone is not null))
           and (candidates.audience = 'sunset' or sunset.profile_id is null))
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

recent_sends as (
    select profile_id, channel, count(distinct message_id) as sends
    from {{ ref('int_profile_message_events') }}
    where event = 'sent'
      and (
        {%- for channel, cap in caps.items() %}
        {% if not loop.first %}or {% endif %}(channel = '{{ channel }}' and occurred_at > {{ lifeline.add_days(-(cap['days'] | int), lifeline.as_of()) }})
        {%- endfor %}
      )
    group by profile_id, channel
),

uncapped as (
    select prioritised.*
    from prioritised
    left join recent_sends
        on recent_sends.profile_id = prioritised.profile_id and recent_sends.channel = prioritised.channel
    where recent_sends.sends is null
       or recent_sends.sends < case prioritised.channel
           {%- for channel, cap in caps.items() %}
           when '{{ channel }}' then {{ cap['max_messages'] | int }}
           {%- endfor %}
           else recent_sends.sends + 1 end
),

last_product as (
    select * from {{ ref('int_profile_last_product') }}
),

enriched as (
    select
        uncapped.audience,
        uncapped.profile_id,
        uncapped.channel,
        uncapped.entered_at,
        uncapped.priority,
        uncapped.step,
        uncapped.angle,
        uncapped.message_format,
        uncapped.offer_percent,
        uncapped.last_response,
        case when uncapped.channel <> 'ads' or profiles.email_consent then profiles.email end as email,
        case when uncapped.channel <> 'ads' or profiles.sms_consent then profiles.phone end as phone,
        profiles.first_name,
        profiles.last_name,
        profiles.lifecycle_stage,
        profiles.best_send_hour,
        products.product_id,
        products.name as product_name,
        products.url as product_url,
        products.image_url as product_image_url,
        {{ lifeline.hash_bucket("uncapped.profile_id || ':' || uncapped.audience", 100) }} < {{ var('holdout_percent') }} as is_holdout
    from uncapped
    join profiles on profiles.profile_id = uncapped.profile_id
    left join last_product on last_product.profile_id = uncapped.profile_id
    left join {{ ref('stg_products') }} as products
        on products.product_id = coalesce(uncapped.product_id, last_product.product_id)
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
            "'format'", "message_format",
            "'offer'", "case when offer_percent > 0 then 'discount_' || cast(cast(offer_percent as integer) as " ~ dbt.type_string() ~ ") else 'none' end",
            "'offer_percent'", "offer_percent",
            "'last_response'", "last_response",
            "'best_send_hour'", "best_send_hour",
            "'product_id'", "product_id",
            "'product_name'", "product_name",
            "'product_url'", "product_url",
            "'product_image_url'", "product_image_url"
        ]) }} as payload,
        first_name,
        last_name,
        step,
        angle,
        message_format,
        offer_percent,
        priority
    from enriched
)

select * from final
