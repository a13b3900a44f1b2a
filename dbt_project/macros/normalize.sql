{#- Identifier normalisation (contract §2; documented in README "Identity").
    Emails: trimmed and lower-cased; kept only when they look like local@domain.tld.
    Phones: E.164. A leading + or 00 keeps the number's own country code; otherwise the
    record's country (its calling code, dropping a national trunk 0) or var default_country
    is applied; the result must be + and 8..15 digits, not all zeros. -#}

{% macro normalize_email(expr) -%}
case when {{ lifeline.regex_matches('lower(trim(' ~ expr ~ '))', "[a-z0-9._%+-]+@[a-z0-9-]+(\\.[a-z0-9-]+)*\\.[a-z]{2,}") }}
     then lower(trim({{ expr }})) end
{%- endmacro %}

{#- Gmail ignores dots in the local part and anything after +: kept as a separate, optional column,
    never used for matching by default. -#}
{% macro canonical_gmail(email_expr) -%}
case when split_part({{ email_expr }}, '@', 2) in ('gmail.com', 'googlemail.com')
     then replace(split_part(split_part({{ email_expr }}, '@', 1), '+', 1), '.', '') || '@gmail.com'
     else {{ email_expr }} end
{%- endmacro %}

{% macro phone_digits(expr) -%}{{ lifeline.regex_replace_all(expr, '[^0-9]', '') }}{%- endmacro %}

{% macro normalize_phone(expr, calling_code_expr) -%}
{%- set digits = lifeline.phone_digits(expr) -%}
{%- set candidate -%}
case
  when {{ expr }} is null or {{ digits }} = '' then null
  when trim({{ expr }}) like '+%' then '+' || {{ digits }}
  when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
  when {{ calling_code_expr }} = '1' and length({{ digits }}) = 11 and {{ digits }} like '1%' then '+' || {{ digits }}
  when {{ calling_code_expr }} <> '1' and {{ digits }} like '0%' then '+' || {{ calling_code_expr }} || substr({{ digits }}, 2)
  else '+' || {{ calling_code_expr }} || {{ digits }}
end
{%- endset -%}
case when {{ lifeline.regex_matches(candidate, '\\+[1-9][0-9]{7,14}') }}
      and {{ lifeline.regex_matches(digits, '0+') }} = false
     then {{ candidate }} end
{%- endmacro %}

{#- Trimmed text, with the junk literals that forms and SDKs write for "no value" ('', 'null',
    'undefined', 'none', 'nan', 'n/a') turned into a real null. -#}
{% macro clean_text(expr) -%}
case when lower(trim(cast({{ expr }} as {{ dbt.type_string() }}))) in ('', 'null', 'undefined', 'none', 'nan', 'n/a', 'nil')
     then null else trim(cast({{ expr }} as {{ dbt.type_string() }})) end
{%- endmacro %}
