// Package api serves Patrol's HTTP routes (the seed-compatible /status/ and
// /api/, plan, reload, events, logs, metrics), the UDP API and the web GUI.
// It knows only package schema and reaches the loop through the Backend
// interface that the root package wires.
package api
