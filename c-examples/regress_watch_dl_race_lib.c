/* The library of regress_watch_dl_race.c: a watched global of two pages
 * (VMSRS_RANGE_0=symbol:race_var). */
__attribute__((aligned(4096))) long race_var[1024] = {7};

long race_bump(int n)
{
    for (int i = 0; i < n; i++)
        ((volatile long *)race_var)[5]++;
    return ((volatile long *)race_var)[5];
}
