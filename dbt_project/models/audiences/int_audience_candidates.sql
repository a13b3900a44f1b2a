{#- Every trigger audience's qualifying people before consent, suppression, priority, caps and
    holdout: audience, profile_id, entered_at (start of the current episode), product_id (the
    trigger's product, if any) and angle (the trigger's base angle). -#}
with candidates as (
    select * from {{ ref('aud_welcome') }}
    union all select * from {{ ref('aud_browse_abandonment') }}
    union all select * from {{ ref('aud_cart_abandonment') }}
    union all select * from {{ ref('aud_post_purchase_replenishment') }}
    union all select * from {{ ref('aud_win_back') }}
    union all select * from {{ ref('aud_sunset') }}
)

select * from candidates
