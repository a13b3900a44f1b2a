{#- Join a record-level relation to the record_profiles CTE (rows of int_record_profiles; or
    `relation`, read as record_profiles) on the record's identifier combination, exactly as
    int_record_profiles keyed it (nulls as ''). -#}
{% macro join_record_profiles(anonymous_id, user_id, email, phone, relation='record_profiles') -%}
join {{ relation }}{% if relation != 'record_profiles' %} as record_profiles{% endif %}
        on record_profiles.anonymous_id_key = coalesce({{ anonymous_id }}, '')
        and record_profiles.user_id_key = coalesce({{ user_id }}, '')
        and record_profiles.email_key = coalesce({{ email }}, '')
        and record_profiles.phone_key = coalesce({{ phone }}, '')
{%- endmacro %}

{#- Left joins of an identifier combination (relation alias with user_id, email, phone,
    anonymous_id) to identity_map, one per identifier type; resolved_profile_id() picks the
    profile of the first identifier found in the order user_id, email, phone, anonymous_id. -#}
{% macro join_identity_map(alias, identity_map='identity_map') -%}
left join {{ identity_map }} as by_user
        on by_user.identifier_type = 'user_id' and by_user.identifier_value = {{ alias }}.user_id
    left join {{ identity_map }} as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = {{ alias }}.email
    left join {{ identity_map }} as by_phone
        on by_phone.identifier_type = 'phone' and by_phone.identifier_value = {{ alias }}.phone
    left join {{ identity_map }} as by_cookie
        on by_cookie.identifier_type = 'anonymous_id' and by_cookie.identifier_value = {{ alias }}.anonymous_id
{%- endmacro %}

{% macro resolved_profile_id() -%}
coalesce(by_user.profile_id, by_email.profile_id, by_phone.profile_id, by_cookie.profile_id)
{%- endmacro %}
