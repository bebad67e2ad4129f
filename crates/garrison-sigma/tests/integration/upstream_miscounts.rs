// Shared by garrison-sigma's (JSON) and garrison-hunt's (EVTX, through `include!`) regression
// tests.

/// Rules whose upstream `match_count` is lower than the number of events in the sample that
/// match the rule as written (checked by hand): (rule id, upstream count, true count, why).
pub const UPSTREAM_MISCOUNTS: &[(&str, usize, usize, &str)] = &[
    (
        "0b9ad457-2554-44c1-82c2-d56a99c42377",
        1,
        3,
        "user.conf.new (twice) and user.conf~RF…TMP all contain \\AppData\\Roaming\\AnyDesk\\user.conf",
    ),
    (
        "8fbf3271-1ef6-4e94-8210-03c2317947f6",
        1,
        3,
        "procdump.exe, procdump64.exe and procdump64a.exe are all listed endings",
    ),
    (
        "45e112d0-7759-4c2a-aa36-9f8fb79d3393",
        1,
        3,
        "three ZoneMap\\Domains values set to DWORD 2, none filtered",
    ),
    (
        "c7dcacd0-cc59-4004-b0a4-1d6cdebe6f3e",
        1,
        2,
        "both AutoShareServer and AutoShareWks set to 0",
    ),
];
