// Package browsertest holds the web GUI's browser tests: headless Chromium,
// driven with chromedp, against a real Patrol on a loopback port. It has
// no code outside its tests.
package browsertest
