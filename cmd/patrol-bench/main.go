// Command patrol-bench measures a real `patrol run` against a minimal
// spawn-and-wait supervisor built into the same binary.
package main

func main() {}
