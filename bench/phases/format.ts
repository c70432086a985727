/** How the phases print their figures. */

/** Three significant-ish digits: 0.281 ms, 6.69 ms, 13.1 ms. */
export const ms = (x: number) => (x < 1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1)) + " ms";
export const kb = (b: number) => (b / 1024).toFixed(1) + " KiB";
export const rate = (x: number) => `${Math.round(x).toLocaleString("en-US")}/s`;
/** MB/s of `bytes` moved in `t` ms. */
export const mbps = (bytes: number, t: number) => bytes / 1e6 / (t / 1000);
