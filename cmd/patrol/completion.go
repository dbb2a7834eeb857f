package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The shell completions are generated from the commands table and each
// command's flag set, the same definitions --help prints: a new flag or
// command completes without anyone editing a script.

// flagNames are a command's flags, as "--name", sorted.
func flagNames(c command) []string {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.flags(fs)
	var out []string
	fs.VisitAll(func(f *flag.Flag) { out = append(out, "--"+f.Name) })
	slices.Sort(out)
	return append(out, "--help")
}

// completion is `patrol completion bash|zsh|fish`.
func completion(o io3, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(o.stderr, "patrol completion: want bash, zsh or fish (for example: source <(patrol completion bash))")
		return exitUsage
	}
	cmds := commands(context.Background(), io3{io.Discard, io.Discard})
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	names = append(names, "help")
	switch args[0] {
	case "bash":
		writeBash(o.stdout, cmds, names)
	case "zsh":
		// zsh runs the bash function through its bash compatibility.
		fmt.Fprintln(o.stdout, "#compdef patrol\n# zsh completion for patrol: source <(patrol completion zsh)\nautoload -U +X bashcompinit && bashcompinit")
		writeBash(o.stdout, cmds, names)
	case "fish":
		fmt.Fprintln(o.stdout, "# fish completion for patrol: patrol completion fish | source")
		fmt.Fprintf(o.stdout, "complete -c patrol -f -n __fish_use_subcommand -a %q\n", strings.Join(names, " "))
		for _, c := range cmds {
			fmt.Fprintf(o.stdout, "complete -c patrol -n '__fish_use_subcommand' -a %s -d %q\n", c.name, c.summary)
			for _, f := range flagNames(c) {
				fmt.Fprintf(o.stdout, "complete -c patrol -n '__fish_seen_subcommand_from %s' -l %s\n", c.name, strings.TrimPrefix(f, "--"))
			}
		}
	default:
		fmt.Fprintf(o.stderr, "patrol completion: unknown shell %q: want bash, zsh or fish\n", args[0])
		return exitUsage
	}
	return exitOK
}

func writeBash(w io.Writer, cmds []command, names []string) {
	fmt.Fprintf(w, `# bash completion for patrol: source <(patrol completion bash)
_patrol() {
  local cur="${COMP_WORDS[COMP_CWORD]}" opts=""
  if [ "$COMP_CWORD" -le 1 ]; then
    COMPREPLY=( $(compgen -W %q -- "$cur") )
    return 0
  fi
  case "${COMP_WORDS[1]}" in
`, strings.Join(names, " "))
	for _, c := range cmds {
		fmt.Fprintf(w, "    %s) opts=%q ;;\n", c.name, strings.Join(flagNames(c), " "))
	}
	fmt.Fprintf(w, `    help) COMPREPLY=( $(compgen -W %q -- "$cur") ); return 0 ;;
  esac
  case "${COMP_WORDS[1]}" in
    completion) COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") ); return 0 ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
  return 0
}
complete -F _patrol patrol
`, strings.Join(names, " "))
}
