# Case-preserving, case-insensitive directories and Windows-safe names, as on a
# Windows drive under WSL (docs/names.md). Only for the project's server (diod
# is case-sensitive): tests/test_guest_case.py boots it on its own, after the
# host put readme.txt at the export's root, and then checks the names on disk.

K="$W/case"
mkdir -p "$K"
CASE_FLAG=user.wsl_case_sensitive
CASE_GIT="-c user.name=Guest -c user.email=guest@example.invalid"

# names: the directory's entries, sorted bytewise, on one line.
names() {
    ls -1 "$1" | LC_ALL=C sort | tr '\n' ' '
}

# case_sensitive DIR: set DIR's case flag (DIR must be empty).
case_sensitive() {
    setfattr -n "$CASE_FLAG" -v 1 "$1"
}

t_case_cat_variant() {
    eq upper "$(cat "$EXPORT/README.TXT")" "stored as readme.txt"
    eq mixed "$(cat "$EXPORT/ReadMe.Txt")" "stored as readme.txt"
    ls -1 "$EXPORT" >/tmp/root.ls
    grep -qx readme.txt /tmp/root.ls
    fails grep -qx README.TXT /tmp/root.ls
}
check case_cat_variant t_case_cat_variant

t_case_touch_variant() {
    mkdir "$K/touch"
    cd "$K/touch"
    echo one >Foo.txt
    touch foo.txt FOO.TXT fOo.TxT
    eq after_touch "$(names .)" "Foo.txt "
    eq content "$(cat foo.txt)" one
    echo two >FOO.txt # O_CREAT|O_TRUNC on a variant opens the one file
    eq after_write "$(names .)" "Foo.txt "
    eq rewritten "$(cat Foo.txt)" two
}
check case_touch_variant t_case_touch_variant

t_case_create_variant_eexist() {
    mkdir "$K/excl"
    cd "$K/excl"
    echo x >Name
    fails mkdir NAME
    fails ln -s target name
    fails ln Name nAME
    fails mkfifo nAmE
    eq names "$(names .)" "Name "
}
check case_create_variant_eexist t_case_create_variant_eexist

t_case_mv() {
    mkdir "$K/mv"
    cd "$K/mv"
    echo data >foo
    mv foo FOO
    eq renamed "$(names .)" "FOO "
    eq content "$(cat foo)" data
    echo other >bar
    mv bar Foo # onto a variant of another file: replaces it, in the new case
    eq replaced "$(names .)" "Foo "
    eq content2 "$(cat FOO)" other
}
check case_mv t_case_mv

t_case_flag() {
    mkdir "$K/cs" "$K/full"
    eq default "$(getfattr --only-values -n "$CASE_FLAG" "$K/cs")" 0
    case_sensitive "$K/cs"
    eq set "$(getfattr --only-values -n "$CASE_FLAG" "$K/cs")" 1
    touch "$K/full/x"
    if setfattr -n "$CASE_FLAG" -v 1 "$K/full" 2>/tmp/setfattr.err; then
        echo "set the flag of a directory that is not empty"
        return 1
    fi
    grep -q "not empty" /tmp/setfattr.err
    eq not_set "$(getfattr --only-values -n "$CASE_FLAG" "$K/full")" 0
    cd "$K/cs"
    echo upper >Makefile
    echo lower >makefile
    eq both "$(names .)" "Makefile makefile "
    eq upper "$(cat Makefile)" upper
    eq lower "$(cat makefile)" lower
    fails cat MAKEFILE
    mkdir sub
    eq inherited "$(getfattr --only-values -n "$CASE_FLAG" sub)" 1
    getfattr -d -m - . >/tmp/dump 2>&1 || true
    fails grep -q -e wsl_case -e volfs /tmp/dump
}
check case_flag t_case_flag

t_case_git_insensitive() {
    mkdir "$K/git-ci"
    cd "$K/git-ci"
    git init -q -b main .
    eq ignorecase "$(git config --get core.ignorecase)" true
    echo hello >README.md
    mkdir src
    echo 'int main(void) { return 0; }' >src/Main.c
    git add .
    git $CASE_GIT commit -q -m one
    git mv README.md readme.md
    git $CASE_GIT commit -q -m two
    eq files "$(git ls-files | tr '\n' ' ')" "readme.md src/Main.c "
    eq on_disk "$(names .)" "readme.md src "
    git fsck --strict --no-progress --no-dangling
    eq status "$(git status --porcelain)" ""
    value case_git_ci_head "$(git rev-parse HEAD)"
}
check case_git_insensitive t_case_git_insensitive

t_case_git_sensitive() {
    mkdir "$K/git-cs"
    case_sensitive "$K/git-cs"
    cd "$K/git-cs"
    git init -q -b main .
    eq ignorecase "$(git config --get core.ignorecase || echo unset)" unset
    echo upper >Makefile
    echo lower >makefile
    git add .
    git $CASE_GIT commit -q -m both
    eq files "$(git ls-files | tr '\n' ' ')" "Makefile makefile "
    git fsck --strict --no-progress --no-dangling
    eq status "$(git status --porcelain)" ""
    value case_git_cs_head "$(git rev-parse HEAD)"
}
check case_git_sensitive t_case_git_sensitive

t_case_tar() {
    mkdir "$K/tar-src" "$K/tar-cs" "$K/tar-ci"
    case_sensitive "$K/tar-src"
    case_sensitive "$K/tar-cs"
    echo upper >"$K/tar-src/Makefile"
    echo lower >"$K/tar-src/makefile"
    tar -c -f /tmp/make.tar -C "$K/tar-src" Makefile makefile
    tar -x -f /tmp/make.tar -C "$K/tar-cs"
    eq sensitive "$(names "$K/tar-cs")" "Makefile makefile "
    eq lower "$(cat "$K/tar-cs/makefile")" lower
    # --keep-old-files: an existing name is an error (by default GNU tar would
    # unlink it and extract again, silently replacing Makefile by makefile).
    if tar -x --keep-old-files -f /tmp/make.tar -C "$K/tar-ci" 2>/tmp/tar.err; then
        echo "tar extracted makefile beside Makefile in a case-insensitive directory"
        return 1
    fi
    cat /tmp/tar.err
    grep -q "makefile: Cannot open: File exists" /tmp/tar.err
    eq insensitive "$(names "$K/tar-ci")" "Makefile "
    eq kept "$(cat "$K/tar-ci/MAKEFILE")" upper
}
check case_tar t_case_tar

t_case_escaped_names() {
    mkdir "$K/escape"
    cd "$K/escape"
    ctl=$(printf 'ctl\001x')
    for n in 'a:b' 'what?' 'star*' 'quote"' 'lt<gt>' 'pipe|' 'back\slash' "$ctl"; do
        printf '%s' "$n" >"$n"
    done
    for n in 'a:b' 'what?' 'star*' 'quote"' 'lt<gt>' 'pipe|' 'back\slash' "$ctl"; do
        eq "content of $n" "$(cat "$n")" "$n"
    done
    eq count "$(ls -1 | wc -l | tr -d ' ')" 8
    eq upper "$(cat 'A:B')" 'a:b'
    mv 'what?' 'WHAT?'
    fails mkdir 'STAR*'
    ls -1 >/tmp/escape.ls
    grep -qx 'WHAT?' /tmp/escape.ls
    grep -qx 'back\\slash' /tmp/escape.ls
}
check case_escaped_names t_case_escaped_names
