# git on the export: init, add and commit a few hundred files, a second commit
# with edits/renames/deletes, fsck and a clean status.

G="$W/git/repo"
mkdir -p "$G"
GIT_AUTHOR="-c user.name=Guest -c user.email=guest@example.invalid"

t_git_init() {
    cd "$G"
    git init -q -b main .
    [ -d .git/objects ]
}
check git_init t_git_init

t_git_add() {
    cd "$G"
    i=0
    while [ "$i" -lt 300 ]; do
        d="dir$((i % 12))/sub$((i % 3))"
        mkdir -p "$d"
        echo "file $i: $(printf '%0100d' "$i")" >"$d/file$i.txt"
        i=$((i + 1))
    done
    printf '#!/bin/sh\necho run\n' >script.sh
    chmod 755 script.sh
    ln -s dir0/sub0/file0.txt link
    git add .
    eq staged "$(git ls-files | wc -l | tr -d ' ')" 302
}
check git_add t_git_add

t_git_commit() {
    cd "$G"
    git $GIT_AUTHOR commit -q -m initial
    i=0
    while [ "$i" -lt 20 ]; do
        echo "changed" >>"dir$((i % 12))/sub$((i % 3))/file$i.txt"
        i=$((i + 1))
    done
    git mv dir1/sub1/file241.txt renamed.txt
    git rm -q dir2/sub2/file290.txt
    git $GIT_AUTHOR commit -q -a -m second
    eq commits "$(git rev-list --count HEAD)" 2
    value git_head "$(git rev-parse HEAD)"
}
check git_commit t_git_commit

t_git_fsck() {
    cd "$G"
    git fsck --strict --no-progress --no-dangling
}
check git_fsck t_git_fsck

t_git_status() {
    cd "$G"
    git status --porcelain >/tmp/git.status
    cat /tmp/git.status
    eq status "$(cat /tmp/git.status)" ""
    eq tracked "$(git ls-files | wc -l | tr -d ' ')" 301
}
check git_status t_git_status
