# User extended attributes (Txattrwalk/Txattrcreate) via attr's getfattr/setfattr.

X="$W/xattr"
mkdir -p "$X"

t_xattr() {
    cd "$X"
    echo x >file
    setfattr -n user.colour -v blue file
    eq get "$(getfattr --only-values -n user.colour file)" blue
    setfattr -n user.colour -v green file
    eq replace "$(getfattr --only-values -n user.colour file)" green
    # A value larger than a typical small buffer.
    big=$(head -c 3000 /dev/zero | tr '\0' 'v')
    setfattr -n user.big -v "$big" file
    eq big "$(getfattr --only-values -n user.big file)" "$big"
    getfattr -d -m '^user\.' file >/tmp/xattr.list
    cat /tmp/xattr.list
    grep -q '^user.colour="green"$' /tmp/xattr.list
    grep -q '^user.big=' /tmp/xattr.list
    setfattr -x user.colour file
    fails getfattr -n user.colour file 2>/dev/null
    # On a directory too.
    mkdir -p dir
    setfattr -n user.on-dir -v yes dir
    eq dir "$(getfattr --only-values -n user.on-dir dir)" yes
    # Left for the host to inspect.
    setfattr -n user.kept -v kept-value file
}
check xattr t_xattr
