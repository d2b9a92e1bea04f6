"""The ``completion`` command: shell completion scripts for bash, zsh and fish.

The scripts are generated from the argparse tree itself (``build_parser()``,
every command built), so a new command, operation or option completes
without touching this file. What is read from each parser: its
sub-commands (``key rotate-master``), its options (and which take a value),
and ``choices`` of options and positionals (``--input-type yaml``,
``completion bash``). An option value without choices completes file names.

Not argcomplete: that would be a run-time dependency and would start Python
on every Tab; these scripts are plain shell with the tree baked in, so
completing costs nothing (re-run ``completion`` after an upgrade).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from . import exitcodes as X

__all__ = ["Node", "bash_script", "fish_script", "run", "walk", "zsh_script"]

PROG = "macula-secrets"


@dataclass
class Node:
    """One command or operation: what can follow it on the command line."""

    path: str
    """Words from the program to here: ``""``, ``"key"``, ``"key split"``."""
    help: str = ""
    subcommands: dict[str, str] = field(default_factory=dict)
    """Name -> one-line help."""
    options: dict[str, str] = field(default_factory=dict)
    """Every option string (``-o``, ``--output``) -> its help."""
    takes_value: set[str] = field(default_factory=set)
    """Option strings that consume the next word."""
    choices: dict[str, list[str]] = field(default_factory=dict)
    """Option string -> its choices."""
    words: list[str] = field(default_factory=list)
    """Choices of positionals (``completion bash``)."""


def walk(parser: argparse.ArgumentParser, path: str = "", help_: str = "") -> list[Node]:
    """Every node of the parser tree, the root first.

    argparse has no public API to list what a parser accepts, so this reads
    ``_actions``, which every argparse since Python 2.7 has.
    """
    node = Node(path, help_)
    children: list[Node] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action.choices, dict) and not action.option_strings:
            helps = {a.dest: a.help or "" for a in getattr(action, "_choices_actions", [])}
            for name, sub in action.choices.items():
                if isinstance(sub, argparse.ArgumentParser):
                    node.subcommands[name] = helps.get(name, "")
                    children += walk(sub, f"{path} {name}".strip(), helps.get(name, ""))
            continue
        choices = [str(c) for c in action.choices] if action.choices is not None else []
        if not action.option_strings:
            node.words += choices
            continue
        for opt in action.option_strings:
            node.options[opt] = action.help or ""
            if action.nargs != 0:
                node.takes_value.add(opt)
                if choices:
                    node.choices[opt] = choices
    return [node, *children]


def _nodes() -> list[Node]:
    from . import build_parser

    return walk(build_parser())


def _sh_case(nodes: list[Node], values: dict[str, str], indent: str = "        ") -> str:
    """``"path") echo 'words';;`` lines of a shell ``case`` over node paths."""
    return "".join(f'{indent}"{n.path}") echo {_sh_quote(values[n.path])};;\n'
                   for n in nodes if values.get(n.path))


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _shared_functions(nodes: list[Node]) -> str:
    """Shell functions (bash and zsh both) that answer questions about the tree."""
    words = {n.path: " ".join([*n.subcommands, *n.words]) for n in nodes}
    opts = {n.path: " ".join(n.options) for n in nodes}
    takes = {n.path: " ".join(sorted(n.takes_value)) for n in nodes}
    choice_lines = "".join(
        f'        "{n.path}|{opt}") echo {_sh_quote(" ".join(values))};;\n'
        for n in nodes for opt, values in n.choices.items())
    return (
        "_macula_secrets_words() {\n    case \"$1\" in\n" + _sh_case(nodes, words)
        + "    esac\n}\n"
        "_macula_secrets_opts() {\n    case \"$1\" in\n" + _sh_case(nodes, opts)
        + "    esac\n}\n"
        "_macula_secrets_takes() {\n    case \"$1\" in\n" + _sh_case(nodes, takes)
        + "    esac\n}\n"
        "_macula_secrets_choices() {\n    case \"$1|$2\" in\n" + choice_lines
        + "    esac\n}\n"
        "# Which command and operation the words before the cursor name.\n"
        "_macula_secrets_node() {\n"
        "    local node=\"\" w skip=0\n"
        "    for w in \"$@\"; do\n"
        "        if [[ $skip == 1 ]]; then skip=0; continue; fi\n"
        "        [[ $w == -- ]] && break\n"
        "        if [[ $w == -* ]]; then\n"
        "            if [[ $w != *=* && \" $(_macula_secrets_takes \"$node\") \" == *\" $w \"* ]]; "
        "then\n"
        "                skip=1\n"
        "            fi\n"
        "            continue\n"
        "        fi\n"
        "        if [[ -n $(_macula_secrets_opts \"${node:+$node }$w\") ]]; then\n"
        "            node=\"${node:+$node }$w\"\n"
        "        fi\n"
        "    done\n"
        "    printf '%s' \"$node\"\n"
        "}\n"
    )


def bash_script(nodes: list[Node]) -> str:
    """``source <(macula-secrets completion bash)``."""
    return (
        f"# bash completion for {PROG}; made by `{PROG} completion bash`\n"
        + _shared_functions(nodes)
        + "_macula_secrets() {\n"
        "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\" node choices\n"
        "    (( COMP_CWORD > 1 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
        "    node=\"$(_macula_secrets_node \"${COMP_WORDS[@]:1:COMP_CWORD-1}\")\"\n"
        "    COMPREPLY=()\n"
        "    if [[ -n $prev && \" $(_macula_secrets_takes \"$node\") \" == *\" $prev \"* ]]; "
        "then\n"
        "        choices=\"$(_macula_secrets_choices \"$node\" \"$prev\")\"\n"
        "        [[ -n $choices ]] && COMPREPLY=($(compgen -W \"$choices\" -- \"$cur\"))\n"
        "        return 0\n"
        "    fi\n"
        "    if [[ $cur == -* ]]; then\n"
        "        COMPREPLY=($(compgen -W \"$(_macula_secrets_opts \"$node\")\" -- \"$cur\"))\n"
        "    else\n"
        "        COMPREPLY=($(compgen -W \"$(_macula_secrets_words \"$node\")\" -- \"$cur\"))\n"
        "    fi\n"
        "    return 0\n"
        "}\n"
        f"complete -o default -F _macula_secrets {PROG}\n"
    )


def zsh_script(nodes: list[Node]) -> str:
    """For ``$fpath`` (``_macula-secrets``) or ``source <(macula-secrets completion zsh)``."""
    return (
        f"#compdef {PROG}\n"
        f"# zsh completion for {PROG}; made by `{PROG} completion zsh`\n"
        + _shared_functions(nodes)
        + "_macula_secrets() {\n"
        "    local cur=\"${words[CURRENT]}\" prev=\"${words[CURRENT-1]}\" node choices\n"
        "    local -a found\n"
        "    node=\"$(_macula_secrets_node \"${(@)words[2,CURRENT-1]}\")\"\n"
        "    if (( CURRENT > 2 )) && [[ \" $(_macula_secrets_takes \"$node\") \" == "
        "*\" $prev \"* ]]; then\n"
        "        choices=\"$(_macula_secrets_choices \"$node\" \"$prev\")\"\n"
        "        if [[ -n $choices ]]; then compadd -- ${=choices}; else _files; fi\n"
        "        return\n"
        "    fi\n"
        "    if [[ $cur == -* ]]; then\n"
        "        found=($(_macula_secrets_opts \"$node\"))  # split into words\n"
        "    else\n"
        "        found=($(_macula_secrets_words \"$node\"))\n"
        "    fi\n"
        "    if (( ${#found} )); then compadd -- \"${found[@]}\"; else _files; fi\n"
        "}\n"
        "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
        "    _macula_secrets \"$@\"\n"
        "else\n"
        f"    compdef _macula_secrets {PROG}\n"
        "fi\n"
    )


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(nodes: list[Node]) -> str:
    """For ``~/.config/fish/completions/macula-secrets.fish``."""
    paths = " ".join(_fish_quote(n.path) for n in nodes)
    takes = " ".join(_fish_quote(f"{n.path}|{opt}") for n in nodes
                     for opt in sorted(n.takes_value))
    out = [
        f"# fish completion for {PROG}; made by `{PROG} completion fish`",
        f"set -g __macula_secrets_nodes {paths}",
        f"set -g __macula_secrets_takes {takes}",
        "function __macula_secrets_node",
        "    set -l words (commandline -opc)",
        "    set -e words[1]",
        "    set -l node ''",
        "    set -l skip 0",
        "    for w in $words",
        "        if test $skip -eq 1",
        "            set skip 0",
        "            continue",
        "        end",
        "        if test \"$w\" = '--'",
        "            break",
        "        end",
        "        if string match -q -- '-*' $w",
        "            if contains -- \"$node|$w\" $__macula_secrets_takes",
        "                set skip 1",
        "            end",
        "            continue",
        "        end",
        "        set -l next (string trim -- \"$node $w\")",
        "        if contains -- $next $__macula_secrets_nodes",
        "            set node $next",
        "        end",
        "    end",
        "    echo $node",
        "end",
        "function __macula_secrets_is",
        "    set -l node (__macula_secrets_node)",
        "    test \"$node\" = \"$argv[1]\"",
        "end",
    ]
    for n in nodes:
        cond = _fish_quote(f"__macula_secrets_is {_fish_quote(n.path)}")
        for name, help_ in n.subcommands.items():
            out.append(f"complete -c {PROG} -f -n {cond} -a {_fish_quote(name)} "
                       f"-d {_fish_quote(_short(help_))}")
        if n.words:
            out.append(f"complete -c {PROG} -f -n {cond} -a {_fish_quote(' '.join(n.words))}")
        for opt, help_ in n.options.items():
            flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
            value = ""
            if opt in n.choices:
                value = f" -x -a {_fish_quote(' '.join(n.choices[opt]))}"
            elif opt in n.takes_value:
                value = " -r"
            out.append(f"complete -c {PROG} -n {cond} {flag}{value} "
                       f"-d {_fish_quote(_short(help_))}")
    return "\n".join(out) + "\n"


def _short(text: str) -> str:
    """A help text as a one-line description (fish shows it beside the candidate)."""
    line = " ".join(text.replace("%%", "%").split())
    return line if len(line) <= 70 else line[:67] + "..."


def run(args: argparse.Namespace) -> int:
    make = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell]
    sys.stdout.write(make(_nodes()))
    return X.OK
